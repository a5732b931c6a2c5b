"""Makes an entity table (labels) for the example project in examples/fraud.yaml.

A trainer's entity table names who and when: one row per (user_id, event_timestamp) to get
features for, plus the label to learn. This writes one that fits the `quiver dev` demo stream
(`make run`): its users (ids 0..999, a few much busier than the rest) and its times (the last two
hours), with a made-up `is_fraud` label (about 2% positive). Needs only pyarrow:

    $(scripts/python-env.sh)/python examples/make_labels.py --out labels.parquet

then `quiver snapshot --entities labels.parquet --service fraud_model_v1 --out train.parquet`
(docs/training.md walks through it).
"""

import argparse
import datetime as dt
import random

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="labels.parquet", help="the Parquet file to write")
    parser.add_argument("--rows", type=int, default=10_000, help="entity rows")
    parser.add_argument("--users", type=int, default=1_000, help="user ids 0..USERS-1 (the demo: 1,000)")
    parser.add_argument("--hours", type=float, default=2.0, help="times spread over the last HOURS")
    parser.add_argument("--fraud-rate", type=float, default=0.02, help="share of rows labelled 1")
    parser.add_argument("--seed", type=int, default=7, help="same seed, same users and labels")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    now = dt.datetime.now(dt.timezone.utc)
    span = dt.timedelta(hours=args.hours)
    # The demo picks user = users * u^3: most events belong to the low ids. Sampling users the
    # same way gives entity rows for users that have history, and some that have little.
    users = [int(rng.random() ** 3 * args.users) for _ in range(args.rows)]
    times = sorted(now - span * rng.random() for _ in range(args.rows))
    labels = [int(rng.random() < args.fraud_rate) for _ in range(args.rows)]
    table = pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "is_fraud": pa.array(labels, pa.int64()),
        }
    )
    pq.write_table(table, args.out)
    print(
        f"wrote {table.num_rows} entity rows to {args.out}: user_id, event_timestamp "
        f"({times[0]:%H:%M:%S} to {times[-1]:%H:%M:%S} UTC), is_fraud ({sum(labels)} positive)"
    )


if __name__ == "__main__":
    main()
