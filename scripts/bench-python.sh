#!/usr/bin/env bash
# The Python client's benchmark (docs/benchmarks.md, "Python client"): starts `quiver dev` from
# the release binary (the example definitions, no demo stream) in a temp dir, writes the serving
# benchmark's rows (`quiver-bench write`), measures the Rust client's reads of them as a baseline
# (`quiver-bench get`, one request in flight) and runs clients/python/tools/bench.py; RUNS times
# (default 3), each on a fresh dev, then prints the median of each figure. Environment: RUNS, QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE, CALLS, PUSH_ROWS.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
py="$(scripts/python-env.sh)"
runs="${RUNS:-3}"
base="${PORT_BASE:-29070}"
work="$(mktemp -d -t quiver-bench-python.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for run in $(seq 1 "$runs"); do
  rm -rf "$work/data"
  QUIVER__LOG__LEVEL=warn "$bin" dev --data-dir "$work/data" --port-base "$base" --apply examples \
    --demo-rate 0 >"$work/dev.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do grep -q "^Ready" "$work/dev.log" && break; sleep 0.2; done
  grep -q "^Ready" "$work/dev.log" || { cat "$work/dev.log"; exit 1; }
  q() { "$bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
  qb() { "$bench_bin" "$@" --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))"; }
  echo "== run $run"
  qb write --entities 100000 | sed -n 1p
  # The Rust client's figures for the same reads, one request in flight: the server's share.
  qb get --entities 100000 --batch 1 --concurrency 1 --duration 10s | tail -1
  qb get --entities 100000 --batch 100 --concurrency 1 --duration 10s | tail -1
  PYTHONPATH=clients/python "$py/python" clients/python/tools/bench.py \
    --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" --online "127.0.0.1:$((base + 3))" \
    --calls "${CALLS:-20000}" --push-rows "${PUSH_ROWS:-1000000}" --seed "$run" | tee "$work/run-$run.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done

echo "== median of $runs runs (range)"
"$py/python" - "$work"/run-*.txt <<'PY'
import json, statistics, sys
runs = [json.loads(next(l for l in open(p) if l.startswith("json "))[5:]) for p in sys.argv[1:]]
for name in runs[0]:
    for key in runs[0][name]:
        values = [r[name][key] for r in runs]
        if key in ("p50_ms", "p99_ms", "rows_per_s", "seconds"):
            print(f"{name:24} {key:10} {statistics.median(values):12,.3f}  ({min(values):,.3f} - {max(values):,.3f})")
PY
