"""The Python client's benchmark (docs/benchmarks.md), against a running `quiver dev` with the
example definitions applied and the serving benchmark's rows written (`quiver-bench write`:
project `bench`, view `bench_view`, 8 float64 features, 100,000 users); scripts/bench-python.sh
sets this up. One caller, closed loop, latency around the client call (request building, gRPC,
the server's read, the Arrow table), on the same 2 cores as the server:

1. get_features, 1 entity x the 8 `bench_view` features: p50, p99;
2. the same with 100 entities per call;
3. the asyncio client, 1 entity x 8;
4. streamed features: 1 and 100 entities x 8 `user_txn` features (tiles: the server's read is
   most of the time), after pushing FILL generated transactions (the last two hours, in time
   order) into `transactions`;
5. push of a 1,000,000-row DataFrame into `merchant_transactions`: rows/s;
6. push of 200,000 rows into `transactions` (its view is the heavy one: server-bound).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time

import numpy as np
import pandas as pd

import quiver

FEATURES = [
    "user_txn:last_amount",
    "user_txn:first_amount",
    "user_txn:txn_count_1h",
    "user_txn:amount_sum_24h",
    "user_txn:amount_mean_7d",
    "user_txn:amount_stddev_7d",
    "user_txn:amount_min_24h",
    "user_txn:txn_count_lifetime",
]


def transactions(n: int, users: int, seed: int, span: dt.timedelta) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n),
            "ts": now - pd.to_timedelta(rng.integers(0, int(span.total_seconds() * 1000), n), unit="ms"),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "merchant": np.char.add("m", rng.integers(0, 500, n).astype(str)),
            "note": rng.choice(["coffee", "groceries weekly", "fuel", "online order 123"], n),
        }
    )


def merchant_transactions(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {
            "merchant_id": np.char.add("m", rng.integers(0, 200, n).astype(str)),
            "ts": now - pd.to_timedelta(rng.integers(0, 600_000, n), unit="ms"),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "user_id": rng.integers(0, 100_000, n),
        }
    )


def percentiles(latencies: list) -> dict:
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "calls": len(ms)}


BENCH_FEATURES = [f"bench_view:f{i}" for i in range(8)]


def reads(client, project, features, users: int, entities: int, calls: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, users, (calls, entities)).tolist()
    for row in keys[:200]:  # warm up: connections, registry types, caches
        client.get_features(features=features, entities={"user_id": row}, project=project)
    latencies = []
    for row in keys:
        started = time.perf_counter()
        table = client.get_features(features=features, entities={"user_id": row}, project=project)
        latencies.append(time.perf_counter() - started)
    assert table.num_rows == entities and table.column(1).null_count < entities
    return percentiles(latencies)


def async_reads(args, calls: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, args.bench_users, calls).tolist()

    async def run():
        async with quiver.AsyncClient(online=args.online, registry=args.registry, project="bench") as client:
            for user in keys[:200]:
                await client.get_features(features=BENCH_FEATURES, entities={"user_id": [user]})
            latencies = []
            for user in keys:
                started = time.perf_counter()
                await client.get_features(features=BENCH_FEATURES, entities={"user_id": [user]})
                latencies.append(time.perf_counter() - started)
            return latencies

    return percentiles(asyncio.run(run()))


def push(client: quiver.Client, source: str, frame: pd.DataFrame) -> dict:
    result = client.push(source, frame)
    assert result.accepted + result.late + result.duplicate == len(frame), result
    return {"rows": result.rows, "seconds": result.seconds, "rows_per_s": result.rows_per_second,
            "late": result.late, "throttled": result.throttled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="127.0.0.1:7070")
    parser.add_argument("--ingest", default="127.0.0.1:7071")
    parser.add_argument("--online", default="127.0.0.1:7073")
    parser.add_argument("--bench-users", type=int, default=100_000, help="users `quiver-bench write` wrote")
    parser.add_argument("--users", type=int, default=10_000, help="users of the streamed fill")
    parser.add_argument("--fill", type=int, default=200_000, help="transactions pushed first")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--push-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    client = quiver.Client(registry=args.registry, ingest=args.ingest, online=args.online, project="fraud")
    out = {}
    calls, wide = args.calls, max(args.calls // 5, 1000)
    out["get_1x8"] = reads(client, "bench", BENCH_FEATURES, args.bench_users, 1, calls, args.seed)
    out["get_100x8"] = reads(client, "bench", BENCH_FEATURES, args.bench_users, 100, wide, args.seed + 1)
    out["async_get_1x8"] = async_reads(args, max(calls // 2, 1000), args.seed + 2)
    # History in event-time order, as a replay would send it.
    history = transactions(args.fill, args.users, args.seed, dt.timedelta(hours=2)).sort_values("ts")
    out["fill_transactions"] = push(client, "transactions", history)
    out["streamed_get_1x8"] = reads(client, "fraud", FEATURES, args.users, 1, max(calls // 4, 1000), args.seed + 3)
    out["streamed_get_100x8"] = reads(client, "fraud", FEATURES, args.users, 100, 500, args.seed + 4)
    out["push_merchant_1m"] = push(client, "merchant_transactions", merchant_transactions(args.push_rows, args.seed))
    out["push_transactions_200k"] = push(
        client, "transactions", transactions(200_000, args.users, args.seed + 5, dt.timedelta(minutes=10))
    )
    for name, figures in out.items():
        shown = ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in figures.items())
        print(f"{name:24} {shown}")
    print("json " + json.dumps(out))


if __name__ == "__main__":
    main()
