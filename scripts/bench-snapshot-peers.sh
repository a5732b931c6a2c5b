#!/usr/bin/env bash
# Snapshots against DuckDB and polars in the same run, on identical data (docs/benchmarks.md,
# "Offline: snapshots against DuckDB and polars"). From the release binaries: starts a registry,
# has `quiver-bench snapshot --write-only` write FEATURE_ROWS (1,000,000) events over 100,000
# users as the source log (Parquet) and an entity table of ENTITY_ROWS (500,000) rows, then RUNS
# (3) times, rotating which engine goes first: a fresh `quiver serve offline` answers
# `quiver snapshot` (cold, then WARM (3) more), and DuckDB and polars (scripts/bench-python-env.sh,
# a pinned venv of their own) each do the same join cold and WARM times in a fresh process. Prints
# each run, the medians, the ratios within runs, peak memory, the machine's load, and checks the
# three answers agree. Environment: RUNS, WARM, FEATURE_ROWS, ENTITY_ROWS, FEATURES (8),
# QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
py="$(scripts/bench-python-env.sh)"
runs="${RUNS:-3}"
warm="${WARM:-3}"
features="${FEATURES:-8}"
base="${PORT_BASE:-28270}"
work="$(mktemp -d -t quiver-bench-peers.XXXXXX)"
pids=()
offline_pid=""
cleanup() {
  for p in "${pids[@]}" $offline_pid; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export QUIVER__LOG__LEVEL=warn
registry="127.0.0.1:$base"
offline="127.0.0.1:$((base + 4))"
QUIVER__GRPC__LISTEN="$registry" QUIVER__HTTP__LISTEN="127.0.0.1:$((base + 50))" \
  QUIVER__REGISTRY__DATA_DIR="$work/registry" "$bin" serve registry >"$work/registry.log" 2>&1 &
pids+=($!)
ready() { for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.2; done; return 1; }
ready $((base + 50)) || { cat "$work/registry.log"; exit 1; }

echo "== the data: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$bench_bin" snapshot --registry "$registry" --offline "$offline" --store "$work/offline" \
  --feature-rows "${FEATURE_ROWS:-1000000}" --entity-rows "${ENTITY_ROWS:-500000}" \
  --last-features "$features" --entities-out "$work/entities.parquet" --write-only
events="$work/offline/sources/project=snapbench/source=events/date=*/*.parquet"
ls $events >/dev/null

(while sleep 2; do cut -d' ' -f1 /proc/loadavg; done >"$work/loadavg.txt") &
pids+=($!)
# What else ran on the machine: all of /proc/stat's busy time minus ours (the registry, and every
# reaped child of this script: the snapshot services, the clients and the peers).
busy() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }
ours() {
  local total=0 p
  for p in "${pids[@]}"; do [ -r "/proc/$p/stat" ] && total="$(awk -v t="$total" '{print t + ($14 + $15) / 100}' "/proc/$p/stat")"; done
  awk -v t="$total" '{print t + ($16 + $17) / 100}' /proc/$$/stat
}
busy_before="$(busy)"; ours_before="$(ours)"; started="$(date +%s)"
engines=(quiver duckdb polars)
for run in $(seq 1 "$runs"); do
  QUIVER__GRPC__LISTEN="$offline" QUIVER__HTTP__LISTEN="127.0.0.1:$((base + 54))" \
    QUIVER__ENDPOINTS__REGISTRY="$registry" QUIVER__OFFLINE__STORE="$work/offline" \
    "$bin" serve offline >"$work/offline-$run.log" 2>&1 &
  offline_pid=$!
  ready $((base + 54)) || { cat "$work/offline-$run.log"; exit 1; }
  shift_by=$(( (run - 1) % 3 ))
  order=("${engines[@]:$shift_by}" "${engines[@]:0:$shift_by}")
  for engine in "${order[@]}"; do
    if [ "$engine" = quiver ]; then
      result="$("$py/python" scripts/snapshot_peers.py quiver --bin "$bin" --offline "$offline" \
        --registry "$registry" --server-pid "$offline_pid" --entities "$work/entities.parquet" \
        --out "$work/out-quiver.parquet" --features "$features" --warm "$warm")"
    else
      result="$("$py/python" scripts/snapshot_peers.py peer "$engine" --events "$events" \
        --entities "$work/entities.parquet" --out "$work/out-$engine.parquet" \
        --features "$features" --warm "$warm")"
    fi
    echo "run $run: $result"
    echo "$result" >>"$work/results.jsonl"
  done
  kill "$offline_pid"; wait "$offline_pid" 2>/dev/null || true; offline_pid=""
done
elapsed=$(( $(date +%s) - started ))
awk -v b0="$busy_before" -v b1="$(busy)" -v o0="$ours_before" -v o1="$(ours)" -v s="$elapsed" \
  'BEGIN { printf "== other processes used %.2f cores on average over the %d s of runs\n", ((b1 - b0) - (o1 - o0)) / s, s }'
sort -n "$work/loadavg.txt" | awk '{ v[NR] = $1 } END { if (NR) printf "== 1-min load average during the runs: min %.2f, median %.2f, max %.2f (%d samples)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR }'
"$py/python" scripts/snapshot_peers.py summary "$work/results.jsonl" \
  --outputs "quiver=$work/out-quiver.parquet" "duckdb=$work/out-duckdb.parquet" "polars=$work/out-polars.parquet"
