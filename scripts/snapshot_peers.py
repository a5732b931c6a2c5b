"""The snapshot benchmark's peers, run by scripts/bench-snapshot-peers.sh on the files
`quiver-bench snapshot --write-only` writes: the source log (Parquet, one file per million
events: user_id, ts, c0..cN-1 among the metadata columns) and an entity table (user_id,
event_timestamp). Each engine computes the same point-in-time join — for every entity row, the
latest event of its user at or before its timestamp, N `last` features — and writes Parquet:

  quiver   `quiver snapshot` end to end (read the entity Parquet, Arrow Flight to the snapshot
           service, write Parquet), a process per request; cold is the first request a fresh
           snapshot service answers, warm the ones after it.
  duckdb   `COPY (SELECT ... ASOF LEFT JOIN ...) TO 'out.parquet'`, in one process: cold is its
           first query, warm the ones after it in the same process (and connection).
  polars   `join_asof(by=user_id, strategy=backward)` of the two tables read from Parquet, then
           `write_parquet`, likewise.

Times are wall clock around the work: for quiver the whole client process, for the peers the
statement or the read-join-write (their interpreter start and imports are not counted). Peak
memory is each process's maximum RSS (`wait4`); Quiver's is the snapshot service's VmHWM plus its
client's.

  snapshot_peers.py quiver --bin B --offline A --server-pid P --entities E --out O --features N
  snapshot_peers.py peer duckdb|polars --events GLOB --entities E --out O --features N
  snapshot_peers.py summary results.jsonl
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_quiver(args):
    features = ",".join(f"wide:f{f}" for f in range(args.features))
    times, client_peak = [], 0
    for _ in range(1 + args.warm):
        command = [
            args.bin, "snapshot", "--project", "snapbench", "--entities", args.entities,
            "--features", features, "--out", args.out, "--output", "json",
            "--offline", args.offline, "--registry", args.registry,
        ]
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - began
        output = child.stdout.read().decode()
        if status != 0:
            sys.exit(f"quiver snapshot failed: {child.stderr.read().decode()}{output}")
        rows = json.loads(output)["rows"]
        times.append(elapsed)
        client_peak = max(client_peak, usage.ru_maxrss)
    with open(f"/proc/{args.server_pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    server_peak = int(fields["VmHWM"].split()[0])
    return {
        "engine": "quiver",
        "rows": rows,
        "cold_s": times[0],
        "warm_s": statistics.median(times[1:]),
        "peak_mib": (server_peak + client_peak) / 1024,
        "server_peak_mib": server_peak / 1024,
        "client_peak_mib": client_peak / 1024,
    }


def duckdb_join(args):
    import duckdb

    connection = duckdb.connect()
    values = ", ".join(f"f.c{f} AS f{f}" for f in range(args.features))
    columns = ", ".join(f"c{f}" for f in range(args.features))
    statement = f"""
        COPY (
            SELECT e.user_id, e.event_timestamp, {values}
            FROM read_parquet('{args.entities}') e
            ASOF LEFT JOIN (SELECT user_id, ts, {columns} FROM read_parquet('{args.events}')) f
            ON e.user_id = f.user_id AND e.event_timestamp >= f.ts
        ) TO '{args.out}' (FORMAT parquet)
    """

    def once():
        connection.execute(statement)
        return connection.execute(f"SELECT count(*) FROM read_parquet('{args.out}')").fetchone()[0]

    return once


def polars_join(args):
    import polars as pl

    columns = [f"c{f}" for f in range(args.features)]

    def once():
        events = pl.read_parquet(args.events, columns=["user_id", "ts", *columns]).sort("ts")
        entities = pl.read_parquet(args.entities).sort("event_timestamp")
        joined = entities.join_asof(
            events, left_on="event_timestamp", right_on="ts", by="user_id", strategy="backward",
            check_sortedness=False,  # both sorted just above
        )
        joined = joined.select(
            "user_id", "event_timestamp", *[pl.col(c).alias(f"f{f}") for f, c in enumerate(columns)]
        )
        joined.write_parquet(args.out)
        return joined.height

    return once


def run_peer(args):
    """Runs in a child process of `measure`, so its peak RSS is the engine's alone."""
    once = {"duckdb": duckdb_join, "polars": polars_join}[args.engine](args)
    times = []
    for _ in range(1 + args.warm):
        began = time.perf_counter()
        rows = once()
        times.append(time.perf_counter() - began)
    return {"engine": args.engine, "rows": rows, "cold_s": times[0], "warm_s": statistics.median(times[1:])}


def measure_peer(args):
    command = [sys.executable, __file__, "child", args.engine, "--events", args.events,
               "--entities", args.entities, "--out", args.out, "--features", str(args.features),
               "--warm", str(args.warm)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    output = child.stdout.read().decode()
    if status != 0:
        sys.exit(f"{args.engine} failed: {output}")
    result = json.loads(output)
    result["peak_mib"] = usage.ru_maxrss / 1024
    return result


def check_outputs(paths):
    """The engines' answers agree: same rows, and per feature the same count of values and sum."""
    import polars as pl

    digests = {}
    for engine, path in paths.items():
        table = pl.read_parquet(path)
        features = [c for c in table.columns if c not in ("user_id", "event_timestamp")]
        digests[engine] = [table.height] + [
            (int(table[c].count()), round(float(table[c].sum() or 0.0), 2)) for c in features
        ]
    reference = next(iter(digests.values()))
    for engine, digest in digests.items():
        status = "agrees" if digest == reference else "DIFFERS"
        print(f"check: {engine}: {digest[0]} rows, feature 0 values/sum {digest[1]} ({status})")
    return all(d == reference for d in digests.values())


def summary(args):
    results = [json.loads(line) for line in open(args.results)]
    by_engine = {}
    for r in results:
        by_engine.setdefault(r["engine"], []).append(r)
    median = statistics.median

    def fig(engine, key):
        values = [r[key] for r in by_engine[engine]]
        return median(values), min(values), max(values)

    runs = len(by_engine["quiver"])
    print(f"== medians of {runs} runs (range); times in seconds, memory in MiB")
    print(f"{'engine':8} {'cold':>22} {'warm':>22} {'peak memory':>24}")
    for engine in by_engine:
        cells = []
        for key in ("cold_s", "warm_s"):
            m, lo, hi = fig(engine, key)
            cells.append(f"{m:.3f} ({lo:.3f}-{hi:.3f})")
        m, lo, hi = fig(engine, "peak_mib")
        cells.append(f"{m:.0f} ({lo:.0f}-{hi:.0f})")
        print(f"{engine:8} {cells[0]:>22} {cells[1]:>22} {cells[2]:>24}")
    q = by_engine["quiver"]
    print(f"quiver's peak: snapshot service {median(r['server_peak_mib'] for r in q):.0f} MiB "
          f"+ client {median(r['client_peak_mib'] for r in q):.0f} MiB (medians)")
    # Ratios within a run (the same minutes on the machine), then their median.
    for peer in [e for e in by_engine if e != "quiver"]:
        for key, name in (("cold_s", "cold"), ("warm_s", "warm")):
            ratios = [p[key] / r[key] for p, r in zip(by_engine[peer], q)]
            print(f"{name}: quiver is {median(ratios):.2f}x {peer}'s speed "
                  f"(runs {min(ratios):.2f}-{max(ratios):.2f}; >1 means quiver is faster)")
        ratios = [r["peak_mib"] / p["peak_mib"] for p, r in zip(by_engine[peer], q)]
        print(f"memory: quiver peak / {peer} peak = {median(ratios):.2f} "
              f"(runs {min(ratios):.2f}-{max(ratios):.2f})")
    if args.outputs:
        ok = check_outputs(dict(o.split("=", 1) for o in args.outputs))
        if not ok:
            sys.exit("the engines' answers differ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    quiver = sub.add_parser("quiver")
    quiver.add_argument("--bin", required=True)
    quiver.add_argument("--offline", required=True)
    quiver.add_argument("--registry", required=True)
    quiver.add_argument("--server-pid", required=True)
    for name in ("peer", "child"):
        peer = sub.add_parser(name)
        peer.add_argument("engine", choices=["duckdb", "polars"])
        peer.add_argument("--events", required=True, help="a glob of the source log's files")
    for p in (quiver, sub.choices["peer"], sub.choices["child"]):
        p.add_argument("--entities", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--features", type=int, default=8)
        p.add_argument("--warm", type=int, default=3, help="warm requests after the cold one")
    report = sub.add_parser("summary")
    report.add_argument("results")
    report.add_argument("--outputs", nargs="*", help="engine=path of each engine's last output")
    args = parser.parse_args()
    if args.mode == "quiver":
        print(json.dumps(run_quiver(args)))
    elif args.mode == "peer":
        print(json.dumps(measure_peer(args)))
    elif args.mode == "child":
        print(json.dumps(run_peer(args)))
    else:
        summary(args)


if __name__ == "__main__":
    main()
