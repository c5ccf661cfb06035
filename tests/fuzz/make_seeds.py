#!/usr/bin/env python3
"""Writes the seed corpora in seeds/<target>/ from the project's own test inputs. Run from anywhere:
   python3 tests/fuzz/make_seeds.py
Needs the xDS protos of grpcio-csds (`.ci/run` installs it) for the xds_resource seeds, and Python's ssl
module for real ClientHellos. The output is committed; what the fuzzer adds goes to corpus/ (ignored)."""

import glob
import json
import os
import re
import ssl

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)


def write(target, name, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def config_load():
    # First byte: 0 YAML, 1 JSON.
    for path in sorted(glob.glob(os.path.join(TESTS, "configs", "valid", "*.yaml"))):
        with open(path, "rb") as f:
            write("config_load", os.path.basename(path), b"\x00" + f.read())
    try:
        import yaml  # PyYAML, when present: a few of them as JSON too
    except ImportError:
        return
    for path in sorted(glob.glob(os.path.join(TESTS, "configs", "valid", "1*.yaml")))[:4]:
        with open(path) as f:
            doc = yaml.safe_load(f)
        write("config_load", os.path.basename(path) + ".json", b"\x01" + json.dumps(doc).encode())


def xds_resource():
    # First byte: 0 Listener, 1 RouteConfiguration, 2 Cluster, 3 ClusterLoadAssignment, 4 Secret.
    from google.protobuf import json_format, symbol_database
    import envoy.config.listener.v3.listener_pb2  # noqa: F401 (registers the types)
    import envoy.config.route.v3.route_pb2  # noqa: F401
    import envoy.config.cluster.v3.cluster_pb2  # noqa: F401
    import envoy.config.endpoint.v3.endpoint_pb2  # noqa: F401
    import envoy.extensions.transport_sockets.tls.v3.secret_pb2  # noqa: F401
    import envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2  # noqa: F401
    import envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2  # noqa: F401
    import envoy.extensions.filters.http.router.v3.router_pb2  # noqa: F401
    import envoy.extensions.transport_sockets.tls.v3.tls_pb2  # noqa: F401
    kinds = {
        "envoy.config.listener.v3.Listener": 0,
        "envoy.config.route.v3.RouteConfiguration": 1,
        "envoy.config.cluster.v3.Cluster": 2,
        "envoy.config.endpoint.v3.ClusterLoadAssignment": 3,
        "envoy.extensions.transport_sockets.tls.v3.Secret": 4,
    }
    db = symbol_database.Default()
    seen = set()
    for path in sorted(glob.glob(os.path.join(TESTS, "peers", "ads", "*.json"))):
        with open(path) as f:
            # The test fills in ports and files at run time; any value does here.
            text = re.sub(r"@[A-Z_]+@", "1", f.read())
        state = json.loads(text)
        for type_url, resources in state.get("resources", {}).items():
            name = type_url.split("/")[-1]
            if name not in kinds:
                continue
            for i, resource in enumerate(resources):
                resource = {k: v for k, v in resource.items() if k != "@type"}
                message = db.GetSymbol(name)()
                try:
                    json_format.ParseDict(resource, message)
                except json_format.ParseError:
                    continue
                data = bytes([kinds[name]]) + message.SerializeToString()
                if data in seen:
                    continue
                seen.add(data)
                base = os.path.basename(path).removesuffix(".json")
                write("xds_resource", f"{base}-{name.split('.')[-1]}-{i}", data)


def client_hello(server_name, alpn):
    """The first flight of Python's own TLS client: a real ClientHello."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def detect():
    write("detect", "hello-sni-alpn", client_hello("api.svc.cluster.local", ["h2", "http/1.1"]))
    write("detect", "hello-sni", client_hello("backend.default", []))
    write("detect", "hello-no-sni", client_hello(None, ["istio-peer-exchange", "istio"]))
    write("detect", "http1", b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    write("detect", "http10", b"POST / HTTP/1.0\r\n")
    write("detect", "h2c", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    write("detect", "not-http", b"SSH-2.0-OpenSSH_9.2\r\n")


def access_log_format():
    formats = [
        # Envoy's default format (config/src/convert/access_log/format.rs).
        '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
        "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
        '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" '
        '"%UPSTREAM_HOST%"\n',
        # tests/access_log.rs
        "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:AUTHORITY)% %REQ(X-REQUEST-ID)% "
        "%REQ(USER-AGENT):4% %PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_FLAGS_LONG% "
        "%RESPONSE_CODE_DETAILS% %BYTES_RECEIVED% %UPSTREAM_CLUSTER% %ROUTE_NAME% "
        "%UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_HOST% %RESP(X-TEST)% %TRAILER(GRPC-STATUS)% "
        "%DOWNSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %HOSTNAME% | %START_TIME(%Y)% %DURATION% "
        "%REQUEST_DURATION% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%\n",
        "%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% "
        "%UPSTREAM_CLUSTER% %REQ(:PATH)% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n",
        "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)% %REQ(X-FORWARDED-FOR):10% 100%% %RESP(CONTENT-TYPE?X-TYPE)%",
    ]
    for i, text in enumerate(formats):
        write("access_log_format", f"format-{i}", text.encode() + b"\x1e" + b"curl/8.0 \xc3\xa9")


def iptables_rules():
    saved = (
        "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:OUTRIGGER_OUTPUT - [0:0]\n"
        "-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n"
        "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
    )
    seeds = {
        "defaults": ["*", "15090,15021,15020", "", "", "*", "15001 15006 1337", ""],
        "lists": ["80,8080", "15090", "22, 443", "10.0.0.0/8,fd00::/8", "192.168.0.0/16,::1/128",
                  "15001 15006 1337 1338", saved],
        "no-inbound": ["", "", "", "", "*", "1 2 0", saved],
    }
    for name, fields in seeds.items():
        write("iptables_rules", name, "\x1e".join(fields).encode())


if __name__ == "__main__":
    config_load()
    xds_resource()
    detect()
    access_log_format()
    iptables_rules()
