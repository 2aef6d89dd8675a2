"""What one index costs the drain: bench.py's drain, alternately with the index and without it,
on one database, so that the load of a shared machine drifts over both sides alike.

    python scripts/bench_index_cost.py [--index index_good_jobs_on_unfinished_or_errored]
                                       [--rounds 6] [--jobs 20000] [--json out.json]

Each round drains with preserved records and without, once with the index and once without
(the order alternates between rounds). Prints the rates, their medians and the median of the
per-round ratios (with / without). Creates and drops its own database, as bench.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from bench import bench_drain, create_database, drop_database, server_url  # noqa: E402

from goodjob_mp.db import connection  # noqa: E402
from goodjob_mp.db.migrate import migrate  # noqa: E402

INDEX_DEF = "SELECT indexdef FROM pg_indexes WHERE indexname = %s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", default="index_good_jobs_on_unfinished_or_errored")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    server = server_url()
    name, url = create_database(server, "goodjob_bench")
    os.environ["GOOD_JOB_DATABASE_URL"] = url
    connection.reset_database_url()
    rates: dict[str, dict[str, list[int]]] = {
        side: {"preserve_on": [], "preserve_off": []} for side in ("with", "without")
    }
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
            row = conn.execute(INDEX_DEF, (args.index,)).fetchone()
            if row is None:
                sys.exit(f"no index {args.index!r} in goodjob_mp's schema")
            create = row[0]
            for number in range(args.rounds):
                order = ("without", "with") if number % 2 == 0 else ("with", "without")
                for side in order:
                    conn.execute(f'DROP INDEX IF EXISTS "{args.index}"')
                    if side == "with":
                        conn.execute(create)
                    for preserve in (True, False):
                        rate = round(bench_drain(conn, args.jobs, preserve))
                        rates[side]["preserve_on" if preserve else "preserve_off"].append(rate)
                print(f"round {number + 1}: {json.dumps(rates)}", file=sys.stderr, flush=True)
    finally:
        connection.close_thread_connection()
        drop_database(server, name)
    results: dict[str, object] = {"index": args.index, "jobs": args.jobs, "rates": rates}
    for kind in ("preserve_on", "preserve_off"):
        with_, without = rates["with"][kind], rates["without"][kind]
        results[f"{kind}_median_with"] = statistics.median(with_)
        results[f"{kind}_median_without"] = statistics.median(without)
        ratios = [w / wo for w, wo in zip(with_, without, strict=True)]
        results[f"{kind}_median_ratio"] = round(statistics.median(ratios), 3)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
