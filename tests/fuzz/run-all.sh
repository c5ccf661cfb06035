#!/usr/bin/env bash
# Builds every fuzz target and runs each for $1 seconds (default 15) from its seeds; exits non-zero on the
# first crash, leaving the reproducer in tests/fuzz/artifacts/<target>/. Run from anywhere.
# `--sanitizer none`: our crates forbid unsafe code, so what a fuzzer can find in them is a panic, which needs
# no sanitizer; without ASan a target runs 2-3x more inputs per second. `--dev`: a debug build (with debug
# assertions and overflow checks) compiles in a fraction of the release build's time, which matters more for a
# few seconds per target than speed; the long runs of README.md use `-O`.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-15}"
flags=(--fuzz-dir tests/fuzz --dev -s none)
cargo +nightly fuzz build "${flags[@]}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list --fuzz-dir tests/fuzz); do
  mkdir -p "tests/fuzz/corpus/$target" "tests/fuzz/seeds/$target"
  echo "-- $target (${seconds} s)"
  status=0
  # The generated corpus (first directory) is git-ignored; the seeds are only read.
  cargo +nightly fuzz run "${flags[@]}" "$target" "tests/fuzz/corpus/$target" "tests/fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+ +DONE|^Done [0-9]+ runs' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz target $target failed (exit $status): reproduce with" \
      "cargo +nightly fuzz run ${flags[*]} $target tests/fuzz/artifacts/$target/<file>"
    exit "$status"
  fi
done
