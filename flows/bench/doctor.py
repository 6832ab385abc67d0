"""How long ``recpipe doctor`` takes to prove the stores agree, on a workspace of many
kept dates: ``python -m flows.bench.doctor --workspace DIR --dates 30 --users 100000``.

It publishes ``--dates`` nights of ``--users`` users (10 recommendations each, and a
small similar-items table) through the nightly's publish path, once (a workspace that
already holds them is reused), then times the full check (every date's rows read and
digested in both stores, SQLite's ``integrity_check``, the Delta logs) and the cheap
check a night makes before its commit point, and prints the figures.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path


def build(workspace: Path, dates: int, users: int) -> float:
    """Publish the nights the workspace does not hold yet; seconds taken."""
    from flows.bench import publish_faults as faults
    from tasks.publishing import readback
    from tasks.storage import database as db

    case = faults.Case(
        workspace, f"sqlite:///{workspace}/recpipe.db", "recommendations", "similar_items"
    )
    first = date(2026, 1, 1)
    engine = db.make_engine(case.url)
    try:
        have = set(readback.database_counts(engine, case.recs))
    finally:
        engine.dispose()
    started = time.perf_counter()
    for n in range(dates):
        day = first + timedelta(days=n)
        if day not in have:
            faults.publish_kept(case, f"night{n}", day, users, n, keep_runs=dates)
            print(f"  published {day} ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def measure(workspace: Path, every_row: bool = True) -> dict:
    from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Stores
    from tasks.publishing.verify import verify

    stores = Stores(workspace, f"sqlite:///{workspace}/recpipe.db")
    tables = [("recommendations", RECOMMENDATIONS), ("similar_items", SIMILAR_ITEMS)]
    started = time.perf_counter()
    cheap = verify(stores, tables, deep=False)
    cheap_seconds = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    full = verify(stores, tables)
    full_seconds, full_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    every = verify(stores, tables, every_row=True) if every_row else full
    every_seconds = time.perf_counter() - started
    rows = sum(c.database.rows for c in full.dates if c.database)
    return {
        "dates": len({c.day for c in full.dates}),
        "rows per store": rows,
        "database MB": round((workspace / "recpipe.db").stat().st_size / 2**20),
        "doctor s": round(full_seconds, 1),
        "doctor cpu s (both threads)": round(full_cpu, 1),
        "doctor --every-row s": round(every_seconds, 1),
        "night's check s": round(cheap_seconds, 1),
        "agree": full.agrees and cheap.agrees and every.agrees,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--no-every-row", action="store_true", help="skip the slowest check")
    args = parser.parse_args()
    args.workspace.mkdir(parents=True, exist_ok=True)
    seconds = build(args.workspace, args.dates, args.users)
    print(f"workspace ready ({seconds:.0f} s to publish what was missing)")
    for name, value in measure(args.workspace, not args.no_every_row).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
