"""An independent ADS control plane (Python grpcio + xds-protos) for the tests of Outrigger's xDS client.

    ads_server.py --port P --state FILE [--tls-cert PEM --tls-key PEM [--client-ca PEM]]

With --tls-cert and --tls-key it serves over TLS; with --client-ca too, clients must present a certificate that
CA signed (mutual TLS). The same streams are also served as envoy.service.secret.v3.SecretDiscoveryService
(StreamSecrets, DeltaSecrets), for clients that take secrets from an SDS `api_config_source`.

Serves envoy.service.discovery.v3.AggregatedDiscoveryService on 127.0.0.1:P (P = 0 picks a free port), both
StreamAggregatedResources (state of the world) and DeltaAggregatedResources (incremental). What it serves is
FILE, JSON written by the test:

    {"version": "2", "resources": {"<type_url>": [<resource in proto3 JSON with "@type">, ...]}}

Optionally, resources with a TTL (xDS `Resource.ttl`) and heartbeats that refresh it:

    {..., "ttls": {"<type_url>": {"<name>": <seconds>}}, "heartbeat_seconds": <seconds>}

A resource with a TTL goes out wrapped in `envoy.service.discovery.v3.Resource` (SotW: the wrapper as the Any;
delta: `Resource.ttl`); every `heartbeat_seconds` (none when absent or 0) each stream that was sent TTL
resources gets them again without a body (SotW: in a response of the same version with the rest of its set).

FILE is polled every 100 ms; when it changes (write it atomically: a temporary file, then rename) every open
stream gets what changed for the types it asked for. A missing FILE serves nothing until it appears; a FILE
that does not parse is reported and the previous state kept.

Every event is one JSON line on stdout, flushed (tests read them; read stdout continuously or send it to a
file). See tests/peers/README.md for the lines. SIGTERM or SIGINT stops the server within a second, exit 0.
"""

import argparse
import asyncio
import hashlib
import importlib
import json
import os
import pkgutil
import signal
import sys

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory

from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

# The resource types the tests use, and the extensions inside them, registered up front; any other "@type" is
# found on demand by importing its package's *_pb2 modules (see `register_type`).
from envoy.config.cluster.v3 import cluster_pb2  # noqa: F401
from envoy.config.endpoint.v3 import endpoint_pb2  # noqa: F401
from envoy.config.listener.v3 import listener_pb2  # noqa: F401
from envoy.config.route.v3 import route_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401

PREFIX = "type.googleapis.com/"
LISTENER = PREFIX + "envoy.config.listener.v3.Listener"
CLUSTER = PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINTS = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTES = PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
# Only these types may be subscribed to with the legacy wildcard (a first request naming nothing).
LEGACY_WILDCARD_TYPES = {LISTENER, CLUSTER}
# A new state goes out in this order; the types after PUSH_FIRST wait until those are ACKed or NACKed (or
# ACK_WAIT_SECONDS pass), as the xDS protocol's make-before-break ordering asks. Other types come last.
PUSH_ORDER = {CLUSTER: 0, ENDPOINTS: 1, SECRET: 2, LISTENER: 3, ROUTES: 4}
PUSH_FIRST = {CLUSTER, ENDPOINTS, SECRET}
ACK_WAIT_SECONDS = 2.0
POLL_SECONDS = 0.1


def emit(event, **fields):
    """One event line on stdout. A reader that went away must not stop the server."""
    try:
        print(json.dumps({"event": event, **fields}), flush=True)
    except (BrokenPipeError, ValueError):
        pass


def short_type(type_url):
    return type_url.rsplit(".", 1)[-1]


# ---------------------------------------------------------------------------------------------------------
# The state file


class StateError(Exception):
    pass


def register_type(full_name):
    """Make `full_name` known to the default descriptor pool, importing the *_pb2 modules of its package."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindMessageTypeByName(full_name)
    except KeyError:
        pass
    package = full_name.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{package}.{info.name}")
        return pool.FindMessageTypeByName(full_name)
    except (ImportError, KeyError):
        raise StateError(f"unknown type {full_name!r}: no xds-protos module defines it") from None


def register_types_in(value):
    """Register every "@type" found anywhere in a JSON value (typed_config inside typed_config...)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type" and isinstance(item, str):
                register_type(item.rsplit("/", 1)[-1])
            else:
                register_types_in(item)
    elif isinstance(value, list):
        for item in value:
            register_types_in(item)


class Resource:
    """One resource of the state: its name, a content hash (its version in delta) and the packed Any."""

    def __init__(self, type_url, doc, ttl=None):
        if not isinstance(doc, dict) or doc.get("@type") != type_url:
            found = doc.get("@type") if isinstance(doc, dict) else type(doc).__name__
            raise StateError(f"a resource under {type_url} has \"@type\" {found!r}")
        register_types_in(doc)
        packed = any_pb2.Any()
        try:
            json_format.ParseDict(doc, packed)
        except json_format.ParseError as error:
            raise StateError(f"{short_type(type_url)}: {error}") from None
        descriptor = register_type(type_url[len(PREFIX):] if type_url.startswith(PREFIX) else type_url)
        message = message_factory.GetMessageClass(descriptor)()
        packed.Unpack(message)
        field = "name" if "name" in descriptor.fields_by_name else "cluster_name"
        self.name = getattr(message, field, "")
        if not self.name:
            raise StateError(f"a {short_type(type_url)} has no {field}")
        body = message.SerializeToString(deterministic=True)
        self.version = hashlib.sha256(body).hexdigest()[:16]
        self.any = any_pb2.Any(type_url=type_url, value=body)
        self.ttl = ttl  # seconds, or None

    def wrapper(self, version, body=True):
        """The xDS `Resource` wrapper carrying this resource's TTL (without the resource: a heartbeat)."""
        wrapped = discovery_pb2.Resource(name=self.name, version=version)
        if body:
            wrapped.resource.CopyFrom(self.any)
        if self.ttl is not None:
            wrapped.ttl.FromNanoseconds(int(self.ttl * 1e9))
        return wrapped

    def sotw_any(self, version, body=True):
        """As a SotW response carries it: the Any itself, or (with a TTL) the wrapper packed as the Any."""
        if self.ttl is None:
            return self.any
        packed = any_pb2.Any()
        packed.Pack(self.wrapper(version, body))
        return packed


class State:
    """What the server serves: the file's version and, per type URL, the resources by name."""

    def __init__(self, version="", by_type=None, heartbeat=0.0):
        self.version = version
        self.by_type = by_type or {}
        self.heartbeat = heartbeat  # seconds between TTL heartbeats, 0: none

    @classmethod
    def parse(cls, text):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as error:
            raise StateError(f"not JSON: {error}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("resources", {}), dict):
            raise StateError('expected {"version": "...", "resources": {"<type_url>": [...]}}')
        ttls = doc.get("ttls", {})
        heartbeat = doc.get("heartbeat_seconds", 0)
        if not isinstance(ttls, dict) or not all(isinstance(t, dict) for t in ttls.values()):
            raise StateError('expected "ttls": {"<type_url>": {"<name>": <seconds>}}')
        if not isinstance(heartbeat, (int, float)) or heartbeat < 0:
            raise StateError('"heartbeat_seconds" is not a number of seconds')
        by_type = {}
        for type_url, docs in doc.get("resources", {}).items():
            if not isinstance(docs, list):
                raise StateError(f"resources[{type_url!r}] is not a list")
            resources = {}
            for item in docs:
                resource = Resource(type_url, item)
                resource.ttl = ttls.get(type_url, {}).get(resource.name)
                if resource.name in resources:
                    raise StateError(f"two {short_type(type_url)} resources named {resource.name!r}")
                resources[resource.name] = resource
            by_type[type_url] = resources
        return cls(str(doc.get("version", "")), by_type, float(heartbeat))

    def of(self, type_url):
        return self.by_type.get(type_url, {})


# ---------------------------------------------------------------------------------------------------------
# Streams: pure request/state -> responses logic, one object per gRPC stream, no I/O but the event lines


class Stream:
    """What one gRPC stream has asked for and been sent. Subclasses define `handle_request(request)` and
    `push(type_url)` (a response if what the stream should have of that type changed, else None)."""

    def __init__(self, kind, state, peer):
        self.kind = kind  # "sotw" or "delta"
        self.state = state
        self.peer = peer
        self.node = None
        self.types = {}  # type_url -> per-type subscription state
        self.nonces = 0
        self.deferred = False  # listeners and routes of a new state wait for its clusters and endpoints

    def handle(self, request):
        if request.HasField("node") and request.node.id:
            self.node = request.node.id  # sent only on the first request with set_node_on_first_message_only
        sub = self.types.get(request.type_url)
        if sub is not None and request.response_nonce and request.response_nonce == sub.nonce:
            sub.awaiting = False
        return self.handle_request(request) + self.flush()

    def on_state(self, state):
        """A new state: clusters, endpoints and secrets now, listeners and routes once those are ACKed
        (make before break: a route never names a cluster the client has not warmed)."""
        self.state = state
        out = [r for r in map(self.push, self.ordered(front=True)) if r]
        self.deferred = True
        return out + self.flush()

    def flush(self, force=False):
        if not self.deferred:
            return []
        if not force and any(self.types[t].awaiting for t in self.ordered(front=True)):
            return []
        self.deferred = False
        return [r for r in map(self.push, self.ordered(front=False)) if r]

    def ordered(self, front):
        return sorted((t for t in self.types if (t in PUSH_FIRST) == front),
                      key=lambda t: (PUSH_ORDER.get(t, len(PUSH_ORDER)), t))

    def next_nonce(self, sub):
        self.nonces += 1
        sub.nonce = str(self.nonces)
        sub.awaiting = True
        return sub.nonce

    @staticmethod
    def classify(request, sub):
        """("request"|"ack"|"nack", stale): error_detail decides ACK vs NACK, not the version."""
        if not request.response_nonce or sub is None:
            return "request", False  # a nonce from an earlier stream means nothing on this one
        event = "nack" if request.HasField("error_detail") else "ack"
        return event, request.response_nonce != sub.nonce

    @staticmethod
    def error_of(request):
        return request.error_detail.message if request.HasField("error_detail") else None


class SotwSub:
    def __init__(self):
        self.wildcard = False
        self.names = set()
        self.nonce = None
        self.awaiting = False  # the last response is neither ACKed nor NACKed yet
        self.sent = None  # name -> version of the last response, None before the first


class SotwStream(Stream):
    """State of the world: LDS/CDS carry the full set, RDS/EDS/SDS the subscribed names that exist."""

    def __init__(self, state, peer):
        super().__init__("sotw", state, peer)

    def handle_request(self, request):
        type_url = request.type_url
        sub = self.types.get(type_url)
        event, stale = self.classify(request, sub)
        emit(event, stream="sotw", type=short_type(type_url), version=request.version_info,
             nonce=request.response_nonce, names=list(request.resource_names), error=self.error_of(request),
             node=self.node, stale=stale)
        if stale:
            return []  # a newer response is on its way; the newest request supersedes this one
        first = sub is None
        if first:
            sub = self.types[type_url] = SotwSub()
        names = set(request.resource_names)
        if first:
            wildcard = "*" in names or (not names and type_url in LEGACY_WILDCARD_TYPES)
        elif "*" in names:
            wildcard = True
        elif names:
            wildcard = False
        else:
            wildcard = sub.wildcard and type_url in LEGACY_WILDCARD_TYPES
        names.discard("*")
        added = names - sub.names
        changed = (wildcard, names) != (sub.wildcard, sub.names)
        sub.wildcard, sub.names = wildcard, names
        content = self.content(type_url, sub)
        if first:
            respond = wildcard or bool(content)
        elif changed:
            respond = bool(added & content.keys()) or self.versions(content) != sub.sent
        else:
            # An ACK, a NACK or a repeat: answer only if this stream has not had the current version.
            respond = sub.sent is not None and self.versions(content) != sub.sent
        return [self.respond(type_url, sub, content)] if respond else []

    def push(self, type_url):
        sub = self.types[type_url]
        content = self.content(type_url, sub)
        if (sub.sent is None and not content) or self.versions(content) == sub.sent:
            return None
        return self.respond(type_url, sub, content)

    def content(self, type_url, sub):
        resources = self.state.of(type_url)
        if sub.wildcard:
            return dict(resources)
        return {name: resources[name] for name in sorted(sub.names) if name in resources}

    @staticmethod
    def versions(content):
        return {name: resource.version for name, resource in content.items()}

    def respond(self, type_url, sub, content):
        nonce = self.next_nonce(sub)
        sub.sent = self.versions(content)
        emit("response", stream="sotw", type=short_type(type_url), version=self.state.version, nonce=nonce,
             names=list(content), error=None, node=self.node)
        return discovery_pb2.DiscoveryResponse(version_info=self.state.version, type_url=type_url, nonce=nonce,
                                               resources=[r.sotw_any(self.state.version) for r in content.values()])

    def heartbeat(self, type_url):
        """The last response again, same version, its TTL resources without a body: refreshes their TTL."""
        sub = self.types[type_url]
        content = {name: r for name, r in self.content(type_url, sub).items() if name in (sub.sent or {})}
        if sub.sent is None or not any(r.ttl is not None for r in content.values()):
            return None
        nonce = self.next_nonce(sub)
        emit("heartbeat", stream="sotw", type=short_type(type_url), version=self.state.version, nonce=nonce,
             names=sorted(n for n, r in content.items() if r.ttl is not None), node=self.node)
        return discovery_pb2.DiscoveryResponse(
            version_info=self.state.version, type_url=type_url, nonce=nonce,
            resources=[r.sotw_any(self.state.version, body=False) for r in content.values()])


class DeltaSub:
    def __init__(self):
        self.wildcard = False
        self.names = set()
        self.known = {}  # name -> version the client holds (told us, or we sent)
        self.told_absent = set()  # subscribed names we reported in removed_resources because they do not exist
        self.nonce = None
        self.awaiting = False
        self.versions = {}  # nonce -> system_version_info of the responses sent


class DeltaStream(Stream):
    """Incremental: only what changed, deletions in removed_resources; resource versions are content hashes."""

    def __init__(self, state, peer):
        super().__init__("delta", state, peer)

    def handle_request(self, request):
        type_url = request.type_url
        sub = self.types.get(type_url)
        event, stale = self.classify(request, sub)
        # Delta requests carry no version: report the system_version_info of the response they answer.
        version = sub.versions.get(request.response_nonce) if sub else None
        emit(event, stream="delta", type=short_type(type_url), version=version, nonce=request.response_nonce,
             names=list(request.resource_names_subscribe), error=self.error_of(request), node=self.node,
             stale=stale, unsubscribe=list(request.resource_names_unsubscribe),
             initial_versions=dict(request.initial_resource_versions))
        first = sub is None
        if first:
            sub = self.types[type_url] = DeltaSub()
            sub.known = dict(request.initial_resource_versions)
            if not request.resource_names_subscribe and type_url in LEGACY_WILDCARD_TYPES:
                sub.wildcard = True
        # Subscription changes count even when the nonce is stale.
        for name in request.resource_names_subscribe:
            if name == "*":
                sub.wildcard = True
            else:
                sub.names.add(name)
        for name in request.resource_names_unsubscribe:
            if name == "*":
                sub.wildcard = False
                continue
            sub.names.discard(name)
            sub.told_absent.discard(name)
            if not sub.wildcard:
                sub.known.pop(name, None)
        # The first request is always answered, even with nothing, so that the client's initial fetch ends.
        response = self.diff(type_url, sub, always=first)
        return [response] if response else []

    def push(self, type_url):
        return self.diff(type_url, self.types[type_url], always=False)

    def diff(self, type_url, sub, always):
        resources = self.state.of(type_url)
        wanted = resources.keys() if sub.wildcard else sub.names & resources.keys()
        send = [resources[name] for name in sorted(wanted) if sub.known.get(name) != resources[name].version]
        removed = sorted(name for name in sub.known if name not in resources)
        unknown = sorted(sub.names - resources.keys() - sub.known.keys() - sub.told_absent)
        if not (send or removed or unknown or always):
            return None
        for resource in send:
            sub.known[resource.name] = resource.version
            sub.told_absent.discard(resource.name)
        for name in removed:
            del sub.known[name]
            if name in sub.names:
                sub.told_absent.add(name)
        sub.told_absent.update(unknown)
        nonce = self.next_nonce(sub)
        sub.versions[nonce] = self.state.version
        removed_all = removed + unknown
        emit("response", stream="delta", type=short_type(type_url), version=self.state.version, nonce=nonce,
             names=[r.name for r in send], error=None, node=self.node, removed=removed_all)
        return discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.state.version, type_url=type_url, nonce=nonce,
            resources=[r.wrapper(r.version) for r in send], removed_resources=removed_all)

    def heartbeat(self, type_url):
        """The TTL resources the client holds, without a body: refreshes their TTL."""
        sub = self.types[type_url]
        resources = self.state.of(type_url)
        beat = [resources[name] for name in sorted(sub.known)
                if name in resources and resources[name].ttl is not None
                and sub.known[name] == resources[name].version]
        if not beat:
            return None
        nonce = self.next_nonce(sub)
        sub.versions[nonce] = self.state.version
        emit("heartbeat", stream="delta", type=short_type(type_url), version=self.state.version, nonce=nonce,
             names=[r.name for r in beat], node=self.node)
        return discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.state.version, type_url=type_url, nonce=nonce,
            resources=[r.wrapper(r.version, body=False) for r in beat])


# ---------------------------------------------------------------------------------------------------------
# gRPC service, file watcher, main


class Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, state):
        self.state = state
        self.queues = set()  # one asyncio.Queue per open stream

    def publish(self, state):
        self.state = state
        for queue in self.queues:
            queue.put_nowait(("state", state))

    def close_all(self):
        for queue in self.queues:
            queue.put_nowait(("end", None))

    async def run(self, stream, request_iterator):
        """Requests and state changes, one at a time, in arrival order: no locks needed."""
        queue = asyncio.Queue()

        async def read():
            try:
                async for request in request_iterator:
                    queue.put_nowait(("request", request))
            except (asyncio.CancelledError, grpc.RpcError):
                pass
            finally:
                queue.put_nowait(("end", None))

        self.queues.add(queue)
        reader = asyncio.get_running_loop().create_task(read())
        emit("stream_open", stream=stream.kind, peer=stream.peer)
        loop = asyncio.get_running_loop()
        deadline = None
        beat_at = None  # when the next TTL heartbeat is due
        try:
            while True:
                if not stream.deferred:
                    deadline = None
                elif deadline is None:
                    deadline = loop.time() + ACK_WAIT_SECONDS
                if not stream.state.heartbeat:
                    beat_at = None
                elif beat_at is None:
                    beat_at = loop.time() + stream.state.heartbeat
                due = min((t for t in (deadline, beat_at) if t is not None), default=None)
                try:
                    timeout = None if due is None else max(0.0, due - loop.time())
                    kind, item = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    if beat_at is not None and loop.time() >= beat_at:
                        kind, item = "heartbeat", None
                    else:
                        emit("ack_timeout", stream=stream.kind, node=stream.node,
                             waiting=[short_type(t) for t in stream.ordered(front=True)
                                      if stream.types[t].awaiting])
                        kind, item = "flush", None
                if kind == "end":
                    break
                if kind == "request":
                    responses = stream.handle(item)
                elif kind == "state":
                    responses = stream.on_state(item)
                elif kind == "heartbeat":
                    beat_at = None
                    responses = [r for r in map(stream.heartbeat, list(stream.types)) if r]
                else:
                    responses = stream.flush(force=True)
                for response in responses:
                    yield response
        finally:
            self.queues.discard(queue)
            reader.cancel()
            emit("stream_closed", stream=stream.kind, peer=stream.peer, node=stream.node)

    async def StreamAggregatedResources(self, request_iterator, context):
        async for response in self.run(SotwStream(self.state, context.peer()), request_iterator):
            yield response

    async def DeltaAggregatedResources(self, request_iterator, context):
        async for response in self.run(DeltaStream(self.state, context.peer()), request_iterator):
            yield response


class Sds(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    """SecretDiscoveryService: the same streams as ADS, for secrets only."""

    def __init__(self, ads):
        self.ads = ads

    async def StreamSecrets(self, request_iterator, context):
        async for response in self.ads.StreamAggregatedResources(request_iterator, context):
            yield response

    async def DeltaSecrets(self, request_iterator, context):
        async for response in self.ads.DeltaAggregatedResources(request_iterator, context):
            yield response


def file_key(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load(path):
    with open(path, encoding="utf-8") as f:
        return State.parse(f.read())


def announce(state):
    emit("state", version=state.version,
         counts={short_type(t): len(resources) for t, resources in state.by_type.items()})


async def watch(path, ads, key):
    while True:
        await asyncio.sleep(POLL_SECONDS)
        now = file_key(path)
        if now == key or now is None:
            continue
        key = now
        try:
            state = load(path)
        except (OSError, StateError) as error:
            emit("state_error", message=str(error))
            continue
        announce(state)
        ads.publish(state)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


async def serve(port, path, tls):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    key = file_key(path)
    state = State()
    if key is not None:
        try:
            state = load(path)
        except (OSError, StateError) as error:
            emit("state_error", message=str(error))
    announce(state)
    ads = Ads(state)
    # Without SO_REUSEPORT (grpc sets it by default) a taken port fails here instead of being shared.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
    sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(Sds(ads), server)
    try:
        if tls is None:
            bound = server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            cert, key, client_ca = tls
            credentials = grpc.ssl_server_credentials(
                [(read_bytes(key), read_bytes(cert))],
                root_certificates=read_bytes(client_ca) if client_ca else None,
                require_client_auth=client_ca is not None)
            bound = server.add_secure_port(f"127.0.0.1:{port}", credentials)
    except RuntimeError:
        bound = 0
    if not bound:
        print(f"ads_server: cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    await server.start()
    watcher = loop.create_task(watch(path, ads, key))
    emit("listening", port=bound)
    await stop.wait()
    watcher.cancel()
    ads.close_all()
    await server.stop(0.3)
    emit("stopped")
    return 0


def main():
    parser = argparse.ArgumentParser(description="ADS control-plane peer for the xDS client tests")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--state", required=True, help="JSON state file, polled every 100 ms")
    parser.add_argument("--tls-cert", help="serve over TLS with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")
    parser.add_argument("--client-ca", help="require client certificates signed by this CA (PEM)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together; --client-ca needs them")
    tls = (args.tls_cert, args.tls_key, args.client_ca) if args.tls_cert else None
    sys.exit(asyncio.run(serve(args.port, args.state, tls)))


if __name__ == "__main__":
    main()
