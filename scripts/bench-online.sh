#!/usr/bin/env bash
# Benchmarks the online store from the release binaries on loopback: starts a registry and
# VOTERS online-store nodes in a temp dir, runs `quiver-bench`, reports the nodes' RSS and CPU,
# and stops everything. Usage:
#   scripts/bench-online.sh get     # 1 node: load ENTITIES rows, then read benchmarks; with
#                                   # PERF_OUT=file, `perf record` of the node during the first
#                                   # (closed loop) read run, of PERF_BATCH (default 1) entities
#                                   # per request
#   scripts/bench-online.sh write   # VOTERS (default 3) nodes: durable replicated write rate
#   scripts/bench-online.sh peers   # 1 node (+ ingest, compute) and a bare tonic lookup server
#                                   # (`quiver-bench peer-server`) on the same data: same-run
#                                   # ratios, ROUNDS (default 3) alternating rounds each; then
#                                   # WINDOWED_EVENTS into a windowed view: windowed vs last
#   scripts/bench-online.sh windowed # 1 node (+ ingest, compute): only the windowed vs last
#                                   # reads of `peers`; with PERF_OUT=file, `perf record` of the
#                                   # node during a windowed-only read run
# Environment: ENTITIES (default 1000000), VOTERS, DURATION (default 10s), ROUNDS,
# WINDOWED_EVENTS (peers; default 3000000), QUIVER_BIN, QUIVER_BENCH_BIN, PORT_BASE.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-get}"
. scripts/bench-binaries.sh
entities="${ENTITIES:-1000000}"
duration="${DURATION:-10s}"
if [ "$mode" = write ]; then voters="${VOTERS:-3}"; else voters="${VOTERS:-1}"; fi
base="${PORT_BASE:-27070}"
work="$(mktemp -d -t quiver-bench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

export QUIVER__LOG__LEVEL=warn
QUIVER__GRPC__LISTEN="127.0.0.1:$base" QUIVER__HTTP__LISTEN="127.0.0.1:$((base + 50))" \
  QUIVER__REGISTRY__DATA_DIR="$work/registry" "$bin" serve registry >"$work/registry.log" 2>&1 &
pids+=($!)
members=()
for id in $(seq 1 "$voters"); do
  port=$((base + id))
  QUIVER__GRPC__LISTEN="127.0.0.1:$port" QUIVER__HTTP__LISTEN="127.0.0.1:$((port + 50))" \
    QUIVER__ENDPOINTS__REGISTRY="127.0.0.1:$base" QUIVER__ONLINE_STORE__NODE_ID="$id" \
    QUIVER__ONLINE_STORE__ADVERTISE="127.0.0.1:$port" QUIVER__ONLINE_STORE__DATA_DIR="$work/node-$id" \
    QUIVER__ONLINE_STORE__PEER_LISTEN="127.0.0.1:$((port + 100))" \
    QUIVER__ONLINE_STORE__PEER_ADVERTISE="127.0.0.1:$((port + 100))" \
    QUIVER__ONLINE_STORE__MAX_ENTITIES_PER_REQUEST=1000 \
    "$bin" serve online-store >"$work/node-$id.log" 2>&1 &
  pids+=($!)
  members+=("$id=127.0.0.1:$port")
done
node_pid="${pids[1]}"
ingest="127.0.0.1:$((base + 20))"
peer="127.0.0.1:$((base + 30))"
if [ "$mode" = peers ] || [ "$mode" = windowed ]; then
  # Ingest and compute feed the windowed view; the peer answers from memory what `write` writes.
  QUIVER__GRPC__LISTEN="127.0.0.1:$((base + 21))" QUIVER__HTTP__LISTEN="127.0.0.1:$((base + 71))" \
    QUIVER__ENDPOINTS__REGISTRY="127.0.0.1:$base" QUIVER__ENDPOINTS__ONLINE_STORE="127.0.0.1:$((base + 1))" \
    "$bin" serve compute >"$work/compute.log" 2>&1 &
  pids+=($!)
  QUIVER__GRPC__LISTEN="$ingest" QUIVER__HTTP__LISTEN="127.0.0.1:$((base + 70))" \
    QUIVER__ENDPOINTS__REGISTRY="127.0.0.1:$base" QUIVER__ENDPOINTS__COMPUTE="127.0.0.1:$((base + 21))" \
    "$bin" serve ingest >"$work/ingest.log" 2>&1 &
  pids+=($!)
  if [ "$mode" = peers ]; then
    "$bench_bin" peer-server --listen "$peer" --entities "$entities" --features 8 >"$work/peer.log" 2>&1 &
    pids+=($!)
  fi
fi
# Client commands take the addresses after the subcommand.
q() { "$bin" "$@" --registry "127.0.0.1:$base" --online "127.0.0.1:$((base + 1))"; }
qb() { "$bench_bin" "$@" --registry "127.0.0.1:$base" --online "127.0.0.1:$((base + 1))" --ingest "$ingest"; }
for _ in $(seq 1 100); do q cluster status >/dev/null 2>&1 && break; sleep 0.2; done
q cluster init --members "$(IFS=,; echo "${members[*]}")"
for _ in $(seq 1 100); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done

cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
self_cpu() { awk '{print ($16 + $17) / 100}' /proc/$$/stat; }  # reaped children: the load generator
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "== load/write: $entities rows x 8 features, batches of 1000, $voters voter(s), synced WAL"
qb write --entities "$entities" --batch 1000 --concurrency "${WRITERS:-8}"
echo "== node 1 RSS after loading $entities entities: $(rss_mib "$node_pid") MiB"
[ "$mode" = write ] && exit 0
# Let RocksDB finish the compactions the load started, so they are not billed to reads.
sleep "${SETTLE:-15}"

if [ "$mode" = windowed ]; then
  qb write --entities "$entities" --no-rows --windowed-events "${WINDOWED_EVENTS:-3000000}"
  sleep "${SETTLE:-15}"
  echo "== 1 entity x 8 windowed features vs 8 last features, closed loop, 64 in flight"
  qb get --entities "$entities" --duration "$duration" --rounds "${ROUNDS:-3}" --batch 1 \
    --concurrency 64 --versus-windowed
  if [ -n "${PERF_OUT:-}" ]; then
    # The read run's 2 s warm-up and its measured span, nothing after it.
    perf record -F 999 -g -o "$PERF_OUT" -p "$node_pid" -- sleep "$(( ${duration%s} + 2 ))" >/dev/null 2>&1 &
    perf_pid=$!
    qb get --entities "$entities" --duration "$duration" --batch 1 --concurrency 64 --windowed
    wait "$perf_pid" || true
  fi
  exit 0
fi

if [ "$mode" = peers ]; then
  # What else ran on the machine: the 1-minute load average every 5 s, and the CPU seconds of
  # every process but ours (all of /proc/stat's busy time minus the servers' and the benches').
  (while sleep 5; do cut -d' ' -f1 /proc/loadavg; done >"$work/loadavg.txt") &
  pids+=($!)
  busy() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }
  ours() {
    local total=0 p
    for p in "${pids[@]}"; do [ -r "/proc/$p/stat" ] && total="$(awk -v t="$total" '{print t + ($14 + $15) / 100}' "/proc/$p/stat")"; done
    awk -v t="$total" '{print t + ($16 + $17) / 100}' /proc/$$/stat
  }
  busy_before="$(busy)"; ours_before="$(ours)"; started="$(date +%s)"
  rounds="${ROUNDS:-3}"
  g() { qb get --entities "$entities" --duration "$duration" --rounds "$rounds" "$@"; }
  echo "== phase 1: the rows of bench_view only"
  echo "== 1 entity x 8 last features, closed loop, 64 in flight: Quiver vs the bare tonic peer"
  g --batch 1 --concurrency 64 --peer "$peer"
  echo "== 100 entities x 8 last features, closed loop, 64 in flight: Quiver vs the bare tonic peer"
  g --batch 100 --concurrency 64 --peer "$peer"
  echo "== 1 entity x 8 last features, open loop at 10,000 req/s: Quiver vs the bare tonic peer"
  g --batch 1 --concurrency 64 --rate 10000 --peer "$peer"
  windowed_events="${WINDOWED_EVENTS:-3000000}"
  echo "== phase 2: $windowed_events events over 7 days into bench_windowed (8 windowed features), through ingest"
  qb write --entities "$entities" --no-rows --windowed-events "$windowed_events"
  sleep "${SETTLE:-15}"
  echo "== one windowed read, for the record (its values come from the loaded events)"
  q get --project bench --entity user_id=1 \
    --features bench_windowed:txn_count_7d,bench_windowed:amount_mean_7d,bench_windowed:amount_sum_24h
  echo "== 1 entity x 8 windowed features vs 8 last features, closed loop, 64 in flight"
  g --batch 1 --concurrency 64 --versus-windowed
  echo "== 1 entity x 8 last features, closed loop, 64 in flight, with the windowed data in the store: Quiver vs the bare tonic peer"
  g --batch 1 --concurrency 64 --peer "$peer"
  elapsed=$(( $(date +%s) - started ))
  awk -v b0="$busy_before" -v b1="$(busy)" -v o0="$ours_before" -v o1="$(ours)" -v s="$elapsed" \
    'BEGIN { printf "== other processes used %.2f cores on average over the %d s of reads\n", ((b1 - b0) - (o1 - o0)) / s, s }'
  sort -n "$work/loadavg.txt" | awk '{ v[NR] = $1 } END { if (NR) printf "== 1-min load average during the reads: min %.2f, median %.2f, max %.2f (%d samples)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR }'
  echo "== node 1 RSS at the end: $(rss_mib "$node_pid") MiB"
  exit 0
fi

run_get() {
  local before after requests client_before client_after
  before="$(cpu_seconds "$node_pid")"
  client_before="$(self_cpu)"
  out="$(qb get --entities "$entities" --duration "$duration" "$@")"
  after="$(cpu_seconds "$node_pid")"
  client_after="$(self_cpu)"
  echo "$out"
  requests="$(echo "$out" | awk '/req\/s over/ {print $0}' | sed -E 's/.*: ([0-9]+) req\/s.*/\1/')"
  secs="${duration%s}"
  awk -v b="$before" -v a="$after" -v r="$requests" -v s="$secs" -v cb="$client_before" -v ca="$client_after" \
    'BEGIN { if (r > 0) printf "server CPU: %.1f us per request (%.2f cores); load generator: %.2f cores (incl. warm-up)\n", (a - b) * 1e6 / (r * s), (a - b) / s, (ca - cb) / s }'
}
echo "== ${PERF_BATCH:-1} entity(ies) x 8 features, closed loop, 64 in flight"
if [ -n "${PERF_OUT:-}" ]; then
  # The read run's 2 s warm-up and its measured span, nothing after it.
  perf record -F 999 -g -o "$PERF_OUT" -p "$node_pid" -- sleep "$(( ${duration%s} + 2 ))" >/dev/null 2>&1 &
  perf_pid=$!
fi
run_get --batch "${PERF_BATCH:-1}" --concurrency 64
[ -n "${PERF_OUT:-}" ] && { wait "$perf_pid" || true; }
echo "== 1 entity x 8 features, open loop at 10000 req/s"
run_get --batch 1 --concurrency 64 --rate 10000
echo "== 100 entities x 8 features, open loop at 500 req/s"
run_get --batch 100 --concurrency 16 --rate 500
echo "== node 1 RSS at the end: $(rss_mib "$node_pid") MiB"
