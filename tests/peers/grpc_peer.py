"""A real gRPC peer (Python grpcio) for the proxy tests.

    grpc_peer.py serve            serves grpc.health.v1.Health on a free loopback port; prints the port, then
                                  runs until stdin closes
    grpc_peer.py serve ADDRESS    the same on ADDRESS (such as 0.0.0.0:9000), until killed
    grpc_peer.py serve-as NAME    like serve, and the service NAME is SERVING too (so a client can tell which
                                  of several servers answered)
    grpc_peer.py call ADDRESS     through ADDRESS: one unary Check, and a server-streaming Watch that must
                                  deliver three updates; prints a JSON summary
    grpc_peer.py flaky            like serve, but each Check fails with UNAVAILABLE on its first call; a later
                                  call answers SERVING only for the service "retry.me" (so a retried request
                                  must arrive intact); "calls" counts the Checks
    grpc_peer.py check ADDRESS    one Check of "retry.me" through ADDRESS; prints its status name
"""

import json
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def serve(address=None, name=None):
    servicer = health.HealthServicer()
    servicer.set("stable", health_pb2.HealthCheckResponse.SERVING)
    if name:
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    servicer.set("outrigger.test", health_pb2.HealthCheckResponse.SERVING)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(address or "127.0.0.1:0")
    server.start()

    def flap():
        # Watchers of "outrigger.test" see it flip every 0.2 s, for at most 12 s.
        states = [health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING]
        for i in range(60):
            time.sleep(0.2)
            servicer.set("outrigger.test", states[i % 2])

    threading.Thread(target=flap, daemon=True).start()
    print(port, flush=True)
    if address:
        server.wait_for_termination()
    else:
        sys.stdin.read()  # the test closes stdin to stop us
        server.stop(0)


class Flaky(health_pb2_grpc.HealthServicer):
    """UNAVAILABLE first, then SERVING for "retry.me" (NOT_FOUND for any other name)."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def Check(self, request, context):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        if request.service == "retry.me":
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        context.abort(grpc.StatusCode.NOT_FOUND, "unexpected service %r" % request.service)


def flaky():
    servicer = Flaky()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    print(servicer.calls, flush=True)
    server.stop(0)


def check(address):
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service="retry.me"), timeout=10)
            print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.RpcError as error:
            print(error.code().name)


def call(address):
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        unary = stub.Check(health_pb2.HealthCheckRequest(service="stable"), timeout=10)
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.service"), timeout=10)
            missing = "OK"
        except grpc.RpcError as error:
            missing = error.code().name
        updates = []
        stream = stub.Watch(health_pb2.HealthCheckRequest(service="outrigger.test"), timeout=20)
        for update in stream:
            updates.append(health_pb2.HealthCheckResponse.ServingStatus.Name(update.status))
            if len(updates) == 3:
                stream.cancel()
                break
    print(json.dumps({"unary": health_pb2.HealthCheckResponse.ServingStatus.Name(unary.status),
                      "missing": missing, "stream": updates}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(*sys.argv[2:3])
    elif sys.argv[1:2] == ["serve-as"] and len(sys.argv) == 3:
        serve(name=sys.argv[2])
    elif sys.argv[1:2] == ["call"] and len(sys.argv) == 3:
        call(sys.argv[2])
    elif sys.argv[1:2] == ["flaky"]:
        flaky()
    elif sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        check(sys.argv[2])
    else:
        sys.exit(__doc__)
