#!/usr/bin/env bash
# Kafka source benchmarks from the release binary: starts `quiver dev` (single voter, synced Raft
# log, no demo stream) in a temp dir and runs `quiver-bench kafka` against it RUNS times (the
# bench starts its own librdkafka mock cluster in the client process).
# Environment: RUNS (default 3), QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE, extra bench flags in
# BENCH_ARGS, LOG_LEVEL (the server's, default warn) and DEV_LOG (a file to keep its log in).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
runs="${RUNS:-3}"
base="${PORT_BASE:-28170}"
work="$(mktemp -d -t quiver-bench-kafka.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true
  [ -n "${DEV_LOG:-}" ] && cp "$work/dev.log" "$DEV_LOG"
  rm -rf "$work"
}
trap cleanup EXIT

QUIVER__LOG__LEVEL="${LOG_LEVEL:-warn}" "$bin" dev --data-dir "$work/data" --port-base "$base" --demo-rate 0 \
  >"$work/dev.log" 2>&1 &
pid=$!
q() { "$bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
qb() { "$bench_bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
for _ in $(seq 1 100); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done

for run in $(seq 1 "$runs"); do
  echo "== run $run"
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
  qb kafka ${BENCH_ARGS:-}
done
echo "== quiver dev RSS: $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status") MiB"
