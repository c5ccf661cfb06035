"""Arize Phoenix (`phoenix serve`) for the tracing tests, its OTLP/gRPC port on loopback only.

Phoenix binds its gRPC receiver on every interface ("[::]:<port>") with no setting to change it; the tests may
use 127.0.0.1 only, so the address is rewritten before the server binds. Everything else is Phoenix's own
`main`, configured by its environment (PHOENIX_HOST, PHOENIX_PORT, PHOENIX_GRPC_PORT, PHOENIX_WORKING_DIR,
PHOENIX_TELEMETRY_ENABLED).
"""

import sys

import grpc.aio._server as aio_server

_bind = aio_server.Server.add_insecure_port


def _loopback(self, address):
    return _bind(self, address.replace("[::]", "127.0.0.1"))


aio_server.Server.add_insecure_port = _loopback

from phoenix.server.main import main  # noqa: E402  (after the patch, so Phoenix binds through it)

if __name__ == "__main__":
    sys.argv = ["phoenix", "serve"]
    sys.exit(main())
