#!/usr/bin/env bash
# Backfill benchmark (issue 12) from the release binaries: for each of RUNS rounds and each
# chunk time in CHUNK_TIMES (alternating, so the machine's drift falls on every setting), starts
# a fresh `quiver dev --demo-rate 0` in a temp dir with that `backfill_chunk_time`, runs
# `quiver-bench backfill --events EVENTS` against it (history load, then the `user_txn` view's
# backfill with a live producer measuring freshness), and prints each run's figures, then the
# medians per chunk time.
# Environment: RUNS (default 3), EVENTS (default 300000), CHUNK_TIMES (default "5ms 10ms"),
# BENCH_ARGS (more `quiver-bench backfill` flags, e.g. --lifetime-zscore), QUIVER_BIN,
# QUIVER_BENCH_BIN, PORT_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-binaries.sh
runs="${RUNS:-3}"
events="${EVENTS:-300000}"
chunk_times="${CHUNK_TIMES:-5ms 10ms}"
base="${PORT_BASE:-28470}"
work="$(mktemp -d -t quiver-bench-backfill.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
q() { "$bin" "$@" --registry "127.0.0.1:$base" --online "127.0.0.1:$((base + 3))"; }

for run in $(seq 1 "$runs"); do
  for chunk in $chunk_times; do
    rm -rf "$work/data"
    QUIVER__LOG__LEVEL=warn QUIVER__ONLINE_STORE__BACKFILL_CHUNK_TIME="$chunk" \
      "$bin" dev --data-dir "$work/data" --port-base "$base" --demo-rate 0 >"$work/dev.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done
    echo "== run $run, backfill_chunk_time $chunk"
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
    "$bench_bin" backfill --events "$events" --server-pid "$pid" ${BENCH_ARGS:-} \
      --registry "127.0.0.1:$base" --ingest "127.0.0.1:$((base + 1))" \
      --online "127.0.0.1:$((base + 3))" --offline "127.0.0.1:$((base + 4))" | tee "$work/out.txt"
    # One line per run for the medians: chunk, events/s, per CPU-second, p99 during, idle p99
    # with the view serving, their ratio.
    awk -v chunk="$chunk" '
      /^backfill of/ { for (i = 1; i <= NF; i++) { if ($i == "events/s;") rate = $(i - 1); if ($i == "events" && $(i + 1) == "per") cpu = $(i - 1) } }
      /during the backfill \(event/ { for (i = 1; i <= NF; i++) if ($i == "p99") during = $(i + 1) }
      /idle, the view serving/ { for (i = 1; i <= NF; i++) if ($i == "p99") idle = $(i + 1) }
      END { if (idle > 0) printf "%s %s %s %s %s %.2f\n", chunk, rate, cpu, during, idle, during / idle }
    ' "$work/out.txt" >>"$work/runs.txt"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
echo "== medians of $runs runs (events/s, events per server CPU-second, live p99 during the backfill, idle p99 with the view serving, their ratio)"
for chunk in $chunk_times; do
  line="$chunk:"
  for column in 2 3 4 5 6; do
    line="$line $(awk -v c="$chunk" -v k="$column" '$1 == c { print $k }' "$work/runs.txt" | median)"
  done
  echo "$line"
done
