#!/usr/bin/env bash
# Starts a Docker engine for the local mesh and its test (tests/compose.rs), with addresses from 198.18.0.0/15
# only, and stops it putting back what it changed on the host. Run as root:
#
#   deploy/dockerd.sh start   # records the host's state, starts dockerd, waits until it answers (at most 60 s)
#   deploy/dockerd.sh stop    # stops that dockerd (by its PID), then restores the host
#
# What dockerd changes on the host, and what `stop` does about it: its iptables chains and rules (every chain and
# rule that was not there at `start` is removed, IPv4 and IPv6), the FORWARD policy (set back), ip_forward (set
# back), the docker0 bridge and any br-* bridge it made (deleted), mounts under its data and exec roots
# (unmounted). It also loads the br_netfilter kernel module, which stays loaded.
set -euo pipefail

state=${OUTRIGGER_DOCKERD_STATE:-/run/outrigger-dockerd}
pidfile=$state/dockerd.pid
log=$state/dockerd.log

iptables_commands() {
  for c in iptables ip6tables; do command -v "$c" >/dev/null && echo "$c"; done
}

start() {
  if [ -e "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "dockerd.sh: dockerd is already running (pid $(cat "$pidfile"))"; return 0
  fi
  if docker version >/dev/null 2>&1; then
    echo "dockerd.sh: another Docker engine answers on this machine; stop it first" >&2; return 1
  fi
  mkdir -p "$state"
  cat /proc/sys/net/ipv4/ip_forward > "$state/ip_forward"
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort > "$state/links"
  for c in $(iptables_commands); do
    for t in filter nat; do
      "$c" -t "$t" -S > "$state/$c-$t.rules" 2>/dev/null || : > "$state/$c-$t.rules"
    done
  done
  dockerd --bip=198.18.100.1/24 --default-address-pool base=198.18.128.0/17,size=24 \
    --pidfile "$pidfile" > "$log" 2>&1 &
  for _ in $(seq 1 120); do
    docker version >/dev/null 2>&1 && { echo "dockerd.sh: dockerd is up (pid $(cat "$pidfile"), log $log)"; return 0; }
    sleep 0.5
  done
  echo "dockerd.sh: dockerd did not answer within 60 s; its log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

stop() {
  if [ -e "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
  [ -d "$state" ] || { echo "dockerd.sh: nothing recorded in $state; nothing to restore"; return 0; }
  # From here on nothing may stop the restoring half-way (a grep finding nothing is not a failure).
  set +e +o pipefail
  # Mounts left by a dockerd that did not stop cleanly (deepest first).
  grep -E ' (/var/lib/docker|/run/docker|/var/run/docker)' /proc/mounts | awk '{print $2}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  for c in $(iptables_commands); do
    for t in filter nat; do
      before=$state/$c-$t.rules
      [ -e "$before" ] || continue
      now=$("$c" -t "$t" -S 2>/dev/null)
      # Rules first (they may jump to the new chains), then the new chains themselves.
      grep '^-A ' <<< "$now" | grep -vxF -f "$before" | while read -r rule; do
        eval "$c -t $t -D ${rule#-A }"
      done
      new_chains=$(grep '^-N ' <<< "$now" | grep -vxF -f "$before" | sed 's/^-N //')
      for chain in $new_chains; do "$c" -t "$t" -F "$chain"; done
      for chain in $new_chains; do "$c" -t "$t" -X "$chain"; done
      # The policies of the built-in chains (dockerd sets FORWARD to DROP).
      grep '^-P ' "$before" | while read -r policy; do eval "$c -t $t $policy"; done
    done
  done
  cat "$state/ip_forward" > /proc/sys/net/ipv4/ip_forward
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | comm -13 "$state/links" - |
    grep -E '^(docker0|br-)' | while read -r link; do ip link del "$link" 2>/dev/null; done
  rm -rf "$state"
  echo "dockerd.sh: dockerd stopped and the host restored"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
