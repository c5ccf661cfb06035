"""A proxyless gRPC client (Python grpcio, whose core resolves xds:/// targets) for tests/proxyless_grpc.rs.

    GRPC_XDS_BOOTSTRAP=bootstrap.json xds_grpcio_client.py TARGET

Opens one channel to TARGET (such as xds:///echo-target) and keeps it. For each line read on stdin (a service
name), one grpc.health.v1 Check on that channel (3 s deadline); prints the status name (SERVING, ...) or the
error code name and its details. Exits when stdin closes.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(target):
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for line in sys.stdin:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=line.strip()), timeout=3)
                print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status), flush=True)
            except grpc.RpcError as error:
                print("%s: %s" % (error.code().name, error.details()), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
