"""The publish kill matrix: a real process killed with SIGKILL at every step of publishing.

Each case: a workspace where yesterday (D1) and today (D2, by an earlier run) are
published to both stores; a child process re-publishes D2 (both tables) and kills
itself at one named checkpoint (tasks/storage/faults.py). Then, as an operator would
find it:

* **lost**: rows of D1 that are not bit-identical to before, in any store or table;
* **torn**: a store/table whose D2 is neither the old rows nor the new ones, whole;
* **disagree** (after the next run's recovery): stores or tables whose D2 came from
  different runs, or a result other than the one the journal promises (old rows when
  the database transaction did not commit, new rows when it did);
* **leftovers** (after recovery): staging tables, staged folders, unfinished journal
  records, and processes the killed one started that are still running.

``recpipe bench publish-faults`` prints the matrix; the tests run a subset.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

POINTS = [
    "publish:intent",
    "publish:database-staged",
    "publish:database-commit",
    "publish:database-committed",
    "publish:lake-{recs}-committed",
    "publish:lake-{similar}-committed",
    "publish:done",
]
# Killed before this index: the database transaction did not commit, the old rows stay.
COMMIT_INDEX = 3
D1, D2 = date(2026, 5, 1), date(2026, 5, 2)
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    workspace: Path
    url: str
    recs: str
    similar: str

    def stores(self) -> Any:
        from tasks.publishing.stores import Stores

        return Stores(self.workspace, self.url)

    def tables(self) -> list[tuple[str, str]]:
        return [(self.recs, "recommendations"), (self.similar, "similar_items")]


def write_night(folder: Path, run_id: str, run_date: date, users: int, seed: int) -> list:
    """A night's two tables as Parquet files, with rows that depend on ``seed``."""
    import numpy as np
    import pandas as pd

    from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Output
    from tasks.scoring.table import recommendations_table

    rng = np.random.default_rng(seed)
    k = 5
    scored = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{i}" for i in range(users)], k),
            "rank": np.tile(np.arange(1, k + 1), users),
            "item_id": [f"i{j}" for j in rng.integers(0, 500, users * k)],
            "score": np.tile(np.linspace(1.0, 0.5, k), users) + rng.random(users * k) / 100,
            "strategy": "personal",
            "reason": [None if j % 3 else f"because of i{j}" for j in range(users * k)],
        }
    )
    recs = recommendations_table(scored, run_id, run_date, "m", str(seed))
    similar = pd.DataFrame(
        {
            "run_id": run_id,
            "run_date": pd.Series([run_date] * 40, dtype="date32[pyarrow]"),
            "item_id": [f"i{j // 4}" for j in range(40)],
            "rank": [j % 4 + 1 for j in range(40)],
            "similar_item_id": [f"i{j}" for j in rng.integers(0, 500, 40)],
            "score": rng.random(40),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    recs_path, similar_path = folder / "recs.parquet", folder / "similar.parquet"
    recs.to_parquet(recs_path, index=False)
    similar.to_parquet(similar_path, index=False)
    return [Output("", RECOMMENDATIONS, recs_path), Output("", SIMILAR_ITEMS, similar_path)]


def publish(case: Case, run_id: str, run_date: date, users: int, seed: int) -> dict:
    """Publish one night of generated rows in this process."""
    return publish_kept(case, run_id, run_date, users, seed, keep_runs=7)


def publish_kept(
    case: Case, run_id: str, run_date: date, users: int, seed: int, keep_runs: int
) -> dict:
    """Publish one night of generated rows, keeping ``keep_runs`` dates."""
    import shutil
    from dataclasses import replace

    from tasks.publish import publish_night

    folder = case.workspace / "in" / run_id
    outputs = write_night(folder, run_id, run_date, users, seed)
    names = [case.recs, case.similar]
    outputs = [replace(o, name=n) for o, n in zip(outputs, names, strict=True)]
    try:
        return publish_night(case.stores(), run_id, run_date, outputs, keep_runs=keep_runs)
    finally:
        if users > 10_000:  # a benchmark's inputs: the published tables hold them
            shutil.rmtree(folder, ignore_errors=True)


def _canonical_digest(frame: Any, kind: str) -> str:
    import pandas as pd

    keys = ["user_id", "rank"] if kind == "recommendations" else ["item_id", "rank"]
    cols = sorted(c for c in frame.columns if c != "run_date")
    frame = frame[cols].astype(object)
    frame = frame.where(frame.notna(), None).sort_values(keys).reset_index(drop=True)
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame.astype(str), index=False).values
    ).hexdigest()


def snapshot(case: Case) -> dict[str, dict[str, tuple[str, frozenset]]]:
    """Per store and table, per date: (digest of its rows, the run ids in it)."""
    from tasks.storage import database as db
    from tasks.storage import lake

    out: dict[str, dict] = {}
    for name, kind in case.tables():
        for store in ("database", "lake"):
            if store == "database":
                frame = db.read_table(case.url, name, None, kind)
                frame["run_date"] = frame["run_date"].astype(str).str[:10]
            else:
                root = case.stores().lake(name)
                frame = lake.read_table(root) if lake.is_table(root) else None
                if frame is not None:
                    frame["run_date"] = frame["run_date"].astype(str)
            dates = {}
            if frame is not None:
                for day, part in frame.groupby("run_date"):
                    dates[str(day)] = (_canonical_digest(part, kind), frozenset(part["run_id"]))
            out[f"{store}/{name}"] = dates
    return out


def leftovers(case: Case) -> list[str]:
    from tasks.storage import database as db
    from tasks.storage import journal

    stores = case.stores()
    found = []
    engine = db.make_engine(case.url)
    try:
        found += [
            f"table {t}"
            for t in db.staging_tables(engine)
            if t.startswith((case.recs, case.similar))
        ]
    finally:
        engine.dispose()
    if stores.staged.exists():
        found += [f"staged {p.name}" for p in stores.staged.iterdir()]
    found += [f"journal {r['publish_id']}" for r in journal.unfinished(stores.journal)]
    for root in (stores.lake(case.recs), stores.lake(case.similar)):
        if root.exists():
            found += [f"folder {p.name}" for p in root.glob(".staging-*")]
    return found


def _child_code(case: Case, run_id: str, users: int) -> str:
    args = json.dumps(
        {
            "workspace": str(case.workspace),
            "url": case.url,
            "recs": case.recs,
            "similar": case.similar,
            "run_id": run_id,
            "run_date": D2.isoformat(),
            "users": users,
        }
    )
    return (
        "import json, sys; from datetime import date; from pathlib import Path\n"
        "from flows.bench.publish_faults import Case, publish\n"
        f"a = json.loads({args!r})\n"
        "case = Case(Path(a['workspace']), a['url'], a['recs'], a['similar'])\n"
        "publish(case, a['run_id'], date.fromisoformat(a['run_date']), a['users'], 2)\n"
    )


def run_child(
    case: Case, run_id: str, users: int, env: dict[str, str], timeout: float = 300
) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", _child_code(case, run_id, users)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise
    if child.returncode not in (0, -9):
        raise RuntimeError(f"publish child failed ({child.returncode}): {err[-2000:]}")
    return child.returncode


def new_case(base: Path, url: str | None) -> Case:
    tag = uuid.uuid4().hex[:8]
    workspace = base / f"ws-{tag}"
    workspace.mkdir(parents=True)
    return Case(
        workspace,
        url or f"sqlite:///{workspace}/recpipe.db",
        f"recs_{tag}",
        f"sim_{tag}",
    )


def drop_case(case: Case) -> None:
    """Drop a case's tables (PostgreSQL cases share one database)."""
    import sqlalchemy as sa

    from tasks.storage import database as db

    engine = db.make_engine(case.url)
    try:
        with engine.begin() as conn:
            for name in (case.recs, case.similar):
                conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
            for name in db.staging_tables(engine):
                if name.startswith((case.recs, case.similar)):
                    conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


def kill_case(base: Path, url: str | None, point: str, users: int = 200) -> dict:
    """One cell of the matrix (see the module docstring)."""
    from tasks.publishing.recovery import recover

    case = new_case(base, url)
    point = point.format(recs=case.recs, similar=case.similar)
    try:
        publish(case, "yesterday", D1, users, 0)
        publish(case, "earlier", D2, users, 1)
        before = snapshot(case)
        start = time.perf_counter()
        code = run_child(case, "tonight", users, {"RECPIPE_FAULT_AT": point})
        after_kill = snapshot(case)
        recovered = recover(case.stores(), tables=(case.recs, case.similar))
        after = snapshot(case)
        seconds = time.perf_counter() - start
        killed = code == -9
        d1, d2 = D1.isoformat(), D2.isoformat()
        lost = sum(after_kill[k].get(d1) != before[k].get(d1) for k in before)
        lost += sum(after[k].get(d1) != before[k].get(d1) for k in before)
        torn = sum(
            after_kill[k].get(d2, (None, frozenset()))[1] not in ({"earlier"}, {"tonight"})
            for k in before
        )
        committed_before_kill = POINTS.index(_template(point, case)) >= COMMIT_INDEX
        expected = frozenset({"tonight" if committed_before_kill else "earlier"})
        disagree = sum(after[k].get(d2, (None, frozenset()))[1] != expected for k in after)
        left = leftovers(case)
        return {
            "point": _template(point, case),
            "store": "postgresql" if case.url.startswith("postgresql") else "sqlite",
            "killed": killed,
            "rows lost": lost,
            "torn": torn,
            "disagree": disagree,
            "leftovers": len(left),
            "leftover names": left,
            "recovery": [r.get("action") for r in recovered],
            "seconds": round(seconds, 2),
        }
    finally:
        drop_case(case)


def _template(point: str, case: Case) -> str:
    return point.replace(case.recs, "{recs}").replace(case.similar, "{similar}")


def race(base: Path, url: str | None, users: int = 200) -> dict:
    """Two processes publish two different dates at the same moment (both paused at the
    staged step, then released together); both must keep all their rows."""
    case = new_case(base, url)
    gates = [case.workspace / f"gate-{n}" for n in range(2)]
    try:
        children = []
        for n, day in enumerate((D1, D2)):
            code = _child_code(case, f"racer{n}", users).replace(D2.isoformat(), day.isoformat())
            env = {
                **os.environ,
                "RECPIPE_PAUSE_AT": "publish:database-staged",
                "RECPIPE_PAUSE_FILE": str(gates[n]),
            }
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", code],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 240
        while not all(Path(f"{g}.reached").exists() for g in gates):
            if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                break
            time.sleep(0.05)
        both_waiting = all(Path(f"{g}.reached").exists() for g in gates)
        for gate in gates:
            gate.touch()
        errors = []
        for child in children:
            _, err = child.communicate(timeout=300)
            if child.returncode != 0:
                errors.append(err[-1500:])
        after = snapshot(case)
        missing = 0
        for n, day in enumerate((D1, D2)):
            for dates in after.values():
                if dates.get(day.isoformat(), (None, frozenset()))[1] != {f"racer{n}"}:
                    missing += 1
        return {
            "store": "postgresql" if case.url.startswith("postgresql") else "sqlite",
            "both paused together": both_waiting,
            "failed runs": len(errors),
            "errors": errors,
            "tables missing rows": missing,
            "leftovers": len(leftovers(case)),
        }
    finally:
        drop_case(case)


def matrix(urls: list[str | None], users: int = 200, base: Path | None = None) -> list[dict]:
    base = base or Path(tempfile.mkdtemp(prefix="recpipe-faults-"))
    return [kill_case(base, url, point, users) for url in urls for point in POINTS]


def report(rows: list[dict], races: list[dict], seconds: float) -> str:
    lines = [
        "| kill point | store | killed | rows lost | torn | disagree | leftovers | recovery | s |",
        "|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['point']} | {r['store']} | {'yes' if r['killed'] else 'NO'} | "
            f"{r['rows lost']} | {r['torn']} | {r['disagree']} | {r['leftovers']} | "
            f"{', '.join(r['recovery']) or '-'} | {r['seconds']} |"
        )
    totals = {k: sum(r[k] for r in rows) for k in ("rows lost", "torn", "disagree", "leftovers")}
    lines.append("")
    lines.append(
        "totals: "
        + ", ".join(f"{k} {v}" for k, v in totals.items())
        + f"; kills that did not happen: {sum(not r['killed'] for r in rows)}"
    )
    for race_result in races:
        lines.append(
            f"race of two dates ({race_result['store']}): paused together "
            f"{race_result['both paused together']}, failed runs {race_result['failed runs']}, "
            f"tables missing a date's rows {race_result['tables missing rows']}, "
            f"leftovers {race_result['leftovers']}"
        )
    lines.append(f"matrix time: {seconds:.1f} s")
    return "\n".join(lines)
