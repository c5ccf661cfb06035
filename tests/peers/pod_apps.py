"""Plain apps for the two-pod namespace test: they know nothing about the mesh.

    pod_apps.py http PORT     HTTP/1.1 server answering "pod-b says hi: <path>" (on /whoami: the caller's
                              identity from x-forwarded-client-cert, as the inbound sidecar passed it; /missing: 404)
    pod_apps.py echo PORT     TCP echo server
    pod_apps.py greet PORT    server that speaks first ("220 pod-b ready\\r\\n"), like SMTP or MySQL
    pod_apps.py ask HOST PORT client for `greet`: prints the greeting it receives
    pod_apps.py say HOST PORT TEXT   client for `echo`: sends TEXT, half-closes, prints what comes back

Servers bind 0.0.0.0 and run until killed.
"""

import http.server
import socket
import socketserver
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/whoami":
            body = f"{self.headers.get('x-forwarded-client-cert')}\n".encode()
        else:
            body = f"pod-b says hi: {self.path}\n".encode()
        # /missing answers 404 (the Istio metrics test counts it).
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


class Greet(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"220 pod-b ready\r\n")
        self.request.recv(64)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(args):
    if args[0] == "http":
        http.server.ThreadingHTTPServer(("0.0.0.0", int(args[1])), Hello).serve_forever()
    elif args[0] in ("echo", "greet"):
        Server(("0.0.0.0", int(args[1])), Echo if args[0] == "echo" else Greet).serve_forever()
    elif args[0] == "ask":
        with socket.create_connection((args[1], int(args[2])), timeout=10) as s:
            print(s.recv(64).decode(), end="")
    elif args[0] == "say":
        with socket.create_connection((args[1], int(args[2])), timeout=10) as s:
            s.sendall(args[3].encode())
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            print(data.decode(), end="")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
