"""Nights of different dates validate at the same time in one workspace, in real processes.

Two processes validate their own run dates' batches (one whole, one in user partitions)
in the same ``validation`` folder, round after round, each round started together by a
file barrier. Both must succeed every round, the volume history must hold every date,
and the Data Docs must list every run's results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROUNDS = 4
PROCESSES = 2

WORKER = r"""
import json, sys, time, traceback
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.config import ValidateConfig
from tasks.validate import validate

ws, me, processes, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
now = pd.Timestamp("2024-06-30T00:00:00Z")
config = ValidateConfig(part_rows=2_000_000 if me == 0 else 700)
rng = np.random.default_rng(me)
n = 2_000
items = pd.DataFrame({"item_id": pd.array([f"i{i}" for i in range(50)], dtype="str")})
items.to_parquet(ws / f"items-{me}.parquet")


def barrier(name):
    (ws / "sync" / f"{name}-{me}").touch()
    deadline = time.monotonic() + 120
    while len(list((ws / "sync").glob(f"{name}-*"))) < processes:
        if time.monotonic() > deadline:
            sys.exit(f"process {me}: the others never reached {name}")
        time.sleep(0.005)


barrier("imported")
for r in range(rounds):
    day = pd.Timestamp("2024-06-01") + pd.Timedelta(days=r * processes + me)
    raw = ws / "raw" / f"ingest_date={day.date()}" / "interactions.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "user_id": pd.array([f"u{u}" for u in rng.integers(0, 200, n)], dtype="str"),
        "item_id": pd.array([f"i{i}" for i in rng.integers(0, 50, n)], dtype="str"),
        "timestamp": day.tz_localize("UTC") - pd.to_timedelta(rng.integers(0, 86_400, n), "s"),
        "value": rng.integers(1, 6, n).astype("float64"),
    }).to_parquet(raw)
    barrier(f"round{r}")
    time.sleep(rng.random() * 0.4)  # start together, then interleave differently each round
    try:
        summary = validate(
            str(raw),
            str(ws / "validated" / f"run_date={day.date()}"),
            str(ws / "validation"),
            config,
            now.isoformat(),
            items_path=str(ws / f"items-{me}.parquet"),
        )
    except Exception:
        print(json.dumps({"round": r, "error": traceback.format_exc()}), flush=True)
        continue
    print(json.dumps({"round": r, "date": str(day.date()), "rows": summary.rows_read,
                      "docs": summary.data_docs_index}), flush=True)
"""


def test_two_nights_of_different_dates_validate_at_the_same_time(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    (tmp_path / "sync").mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), str(p), str(PROCESSES), str(ROUNDS)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(PROCESSES)
    ]
    try:
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    reports = []
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
        reports += [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    errors = [r["error"] for r in reports if "error" in r]
    assert not errors, errors[0]
    assert len(reports) == PROCESSES * ROUNDS
    dates = sorted(f"run_date={r['date']}" for r in reports)
    history = json.loads((tmp_path / "validation" / "volume_history.json").read_text())
    assert sorted(history) == dates
    assert all(entry["rows_read"] == 2_000 for entry in history.values())

    # One Data Docs site for all runs: a page for every stored result, all on the index.
    index = Path(reports[0]["docs"])
    assert {r["docs"] for r in reports} == {str(index)}
    stored = list((tmp_path / "validation" / "gx" / "uncommitted" / "validations").rglob("*.json"))
    pages = [p.relative_to(index.parent) for p in (index.parent / "validations").rglob("*.html")]
    # per run at least the items suite's result and one of the interactions suite
    assert len(pages) == len(stored) >= PROCESSES * ROUNDS * 2
    html = index.read_text(encoding="utf-8")
    assert all(quote(page.as_posix()) in html for page in pages)
    for date in dates:  # each night's results are labelled with its date
        assert sum(page.parts[2].startswith(f"{date}-") for page in pages) >= 2
    for suite in ("interactions", "interactions_batch", "items"):
        assert f"expectations/{suite}.html" in html
    assert not list((tmp_path / "validation").rglob("*.tmp"))
