#!/usr/bin/env bash
# Streaming benchmarks from the release binary: starts `quiver dev` (single voter, synced Raft
# log, no demo stream) in a temp dir and runs `quiver-bench push` against it:
#   1. throughput: as fast as acknowledgements allow, both example sources;
#   2. freshness: 20,000 events/s offered, event -> acknowledged latency, both sources;
# then the tile engine alone (`cargo bench -p quiver-core --bench tile_engine`).
# Environment: DURATION (default 15s), RUNS (default 3), QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
duration="${DURATION:-15s}"
runs="${RUNS:-3}"
base="${PORT_BASE:-28070}"
work="$(mktemp -d -t quiver-bench-push.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

QUIVER__LOG__LEVEL=warn "$bin" dev --data-dir "$work/data" --port-base "$base" --demo-rate 0 \
  >"$work/dev.log" 2>&1 &
pid=$!
q() { "$bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
qb() { "$bench_bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
for _ in $(seq 1 100); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done

for run in $(seq 1 "$runs"); do
  echo "== run $run: throughput"
  qb push --duration "$duration" --source transactions
  qb push --duration "$duration" --source merchant_transactions
  echo "== run $run: freshness at 20,000 events/s"
  qb push --duration "$duration" --rate 20000 --batch 200 --source transactions
  qb push --duration "$duration" --rate 20000 --batch 200 --source merchant_transactions
done
echo "== quiver dev RSS: $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status") MiB"
echo "== tile engine alone"
cargo bench -q -p quiver-core --bench tile_engine
