#!/usr/bin/env bash
# Benchmarks the online store from the release binary on loopback: starts a registry and
# VOTERS online-store nodes in a temp dir, runs `quiver bench`, reports the nodes' RSS and CPU,
# and stops everything. Usage:
#   scripts/bench-online.sh get     # 1 node: load ENTITIES rows, then read benchmarks
#   scripts/bench-online.sh write   # VOTERS (default 3) nodes: durable replicated write rate
# Environment: ENTITIES (default 1000000), VOTERS, DURATION (default 10s), QUIVER_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-get}"
target_dir="${CARGO_TARGET_DIR:-target}"
bin="${QUIVER_BIN:-$target_dir/release/quiver}"
[ -x "$bin" ] || cargo build --release -p quiver
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
    QUIVER__ONLINE_STORE__MAX_ENTITIES_PER_REQUEST=1000 \
    "$bin" serve online-store >"$work/node-$id.log" 2>&1 &
  pids+=($!)
  members+=("$id=127.0.0.1:$port")
done
node_pid="${pids[1]}"
# Client commands take the addresses after the subcommand.
q() { "$bin" "$@" --registry "127.0.0.1:$base" --online "127.0.0.1:$((base + 1))"; }
for _ in $(seq 1 100); do q cluster status >/dev/null 2>&1 && break; sleep 0.2; done
q cluster init --members "$(IFS=,; echo "${members[*]}")"
for _ in $(seq 1 100); do q cluster status 2>/dev/null | grep -q "is Leader" && break; sleep 0.2; done

cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
self_cpu() { awk '{print ($16 + $17) / 100}' /proc/$$/stat; }  # reaped children: the load generator
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "== load/write: $entities rows x 8 features, batches of 1000, $voters voter(s), synced WAL"
q bench write --entities "$entities" --batch 1000 --concurrency "${WRITERS:-8}"
echo "== node 1 RSS after loading $entities entities: $(rss_mib "$node_pid") MiB"
[ "$mode" = write ] && exit 0
# Let RocksDB finish the compactions the load started, so they are not billed to reads.
sleep "${SETTLE:-15}"

run_get() {
  local before after requests client_before client_after
  before="$(cpu_seconds "$node_pid")"
  client_before="$(self_cpu)"
  out="$(q bench get --entities "$entities" --duration "$duration" "$@")"
  after="$(cpu_seconds "$node_pid")"
  client_after="$(self_cpu)"
  echo "$out"
  requests="$(echo "$out" | awk '/req\/s over/ {print $0}' | sed -E 's/.*: ([0-9]+) req\/s.*/\1/')"
  secs="${duration%s}"
  awk -v b="$before" -v a="$after" -v r="$requests" -v s="$secs" -v cb="$client_before" -v ca="$client_after" \
    'BEGIN { if (r > 0) printf "server CPU: %.1f us per request (%.2f cores); load generator: %.2f cores (incl. warm-up)\n", (a - b) * 1e6 / (r * s), (a - b) / s, (ca - cb) / s }'
}
echo "== 1 entity x 8 features, closed loop, 64 in flight"
run_get --batch 1 --concurrency 64
echo "== 1 entity x 8 features, open loop at 10000 req/s"
run_get --batch 1 --concurrency 64 --rate 10000
echo "== 100 entities x 8 features, open loop at 500 req/s"
run_get --batch 100 --concurrency 16 --rate 500
echo "== node 1 RSS at the end: $(rss_mib "$node_pid") MiB"
