#!/usr/bin/env bash
# Snapshot benchmark from the release binary: starts `quiver dev` (no demo stream) in a temp dir,
# runs `quiver-bench snapshot` against it (10M generated feature rows written into the offline
# store, then 1M-row as-of snapshots cold and warm and a windowed one, over Arrow Flight), and
# reports the dev process's peak RSS before and after (the snapshot service runs inside it).
# Environment: RUNS (default 3), FEATURE_ROWS, ENTITY_ROWS, QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
runs="${RUNS:-3}"
base="${PORT_BASE:-28170}"
feature_rows="${FEATURE_ROWS:-10000000}"
entity_rows="${ENTITY_ROWS:-1000000}"
work="$(mktemp -d -t quiver-bench-snapshot.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for run in $(seq 1 "$runs"); do
  rm -rf "$work/data"
  QUIVER__LOG__LEVEL=warn "$bin" dev --data-dir "$work/data" --port-base "$base" --demo-rate 0 \
    >"$work/dev.log" 2>&1 &
  pid=$!
  q() { "$bin" "$@" --registry "127.0.0.1:$base" --offline "127.0.0.1:$((base + 4))" --online "127.0.0.1:$((base + 3))"; }
  qb() { "$bench_bin" "$@" --registry "127.0.0.1:$base" --offline "127.0.0.1:$((base + 4))" --online "127.0.0.1:$((base + 3))"; }
  for _ in $(seq 1 100); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done
  hwm() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
  echo "== run $run (quiver dev peak RSS before: $(hwm) MiB)"
  qb snapshot --store "$work/data/offline" --feature-rows "$feature_rows" --entity-rows "$entity_rows"
  echo "== run $run: quiver dev peak RSS after: $(hwm) MiB"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
