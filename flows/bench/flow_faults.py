"""Kill a real ``recpipe run`` with SIGKILL while it scores or publishes; then look.

Each case copies a workspace where yesterday (D1) is published, runs ``recpipe run`` for
today (D2) with ``RECPIPE_FAULT_AT=<point>`` so the process kills itself there, and
checks what an operator would find:

* yesterday's rows bit-identical in both stores (``rows lost``);
* the ``champion`` alias where it was (it may only move once the night's tables commit);
* no process the killed run started still running (``orphans``: the temporary Prefect
  server, Dask workers);

then runs the same date again, as the next night or an operator would, and checks that
the stores agree (``disagree``: the run ids of D2 differ between stores or tables) and
that no staging table, staged folder or unfinished journal record is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
POINTS = [
    "score:planned",
    "score:shard-written",
    "publish:database-committed",
    "publish:lake-recommendations-committed",
    "publish:done",
    "publish:champion-moved",
]
TINY = ["--demo-users", "150", "--demo-items", "100", "--models", "popularity", "--k", "5"]
# so that the gate decides on 150 users and each night's promotion moves the alias
TINY_EVIDENCE = {"RECPIPE__EVALUATE__MIN_USERS": "1", "RECPIPE__EVALUATE__MIN_EVENTS": "1"}


def recpipe(workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """``recpipe --workspace W ...`` as a child process; ``(returncode, output, pid)``."""
    child = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "--workspace", str(workspace), *args],
        cwd=Path(__file__).resolve().parents[2],
        # its own temporary server, with its home in the workspace (recpipe sets it)
        env={
            **{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")},
            **TINY_EVIDENCE,
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise
    return child.returncode, out, child.pid


def descendants_alive(session_id: int) -> list[str]:
    """Live (not zombie) processes of a session: what a killed run left running."""
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid", "name", "status", "cmdline"]):
        try:
            if os.getsid(proc.info["pid"]) != session_id:
                continue
        except OSError:
            continue
        if proc.info["status"] != psutil.STATUS_ZOMBIE:
            alive.append(f"{proc.info['pid']} {' '.join(proc.info['cmdline'] or [])[:80]}")
    return alive


def state(workspace: Path) -> dict[str, Any]:
    """Both stores' rows by date (digests and run ids), the alias, the leftovers."""
    from flows.bench.publish_faults import Case, leftovers, snapshot
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    ws = Workspace.at(workspace)
    case = Case(ws.root, ws.database_url, "recommendations", "similar_items")
    client = tracking.client_for(ws)
    return {
        "tables": snapshot(case),
        "champion": registry.champion_version(client, "recpipe-recommender"),
        "leftovers": leftovers(case),
    }


def base_workspace(folder: Path) -> Path:
    """A workspace where D1 was published by a full nightly run."""
    workspace = folder / "base"
    code, out, _ = recpipe(workspace, "run", "--run-date", D1.isoformat(), *TINY)
    if code != 0:
        raise RuntimeError(f"the first night failed ({code}):\n{out[-3000:]}")
    return workspace


def kill_case(base: Path, folder: Path, point: str) -> dict:
    workspace = folder / point.replace(":", "-")
    shutil.copytree(base, workspace, symlinks=True)
    before = state(workspace)
    start = time.perf_counter()
    code, _, pid = recpipe(
        workspace, "run", "--run-date", D2.isoformat(), *TINY, env={"RECPIPE_FAULT_AT": point}
    )
    time.sleep(1.0)  # a process tied to the run gets its signal at once; give it a moment
    orphans = descendants_alive(pid)
    for line in orphans:  # never leave them behind, whatever the verdict
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    killed = state(workspace)
    d1 = D1.isoformat()
    lost = sum(killed["tables"][k].get(d1) != before["tables"][k].get(d1) for k in before["tables"])
    alias_moved_early = (
        point != "publish:champion-moved" and killed["champion"] != before["champion"]
    )
    again, out_again, _ = recpipe(workspace, "run", "--run-date", D2.isoformat(), *TINY)
    after = state(workspace)
    lost += sum(after["tables"][k].get(d1) != before["tables"][k].get(d1) for k in before["tables"])
    runs = {after["tables"][k].get(D2.isoformat(), (None, frozenset()))[1] for k in after["tables"]}
    return {
        "point": point,
        "killed": code == -signal.SIGKILL,
        "rows lost": lost,
        "alias moved before commit": int(alias_moved_early),
        "orphans": len(orphans),
        "next run": "ok" if again == 0 else f"failed: {out_again[-300:]}",
        "alias moved by then": int(after["champion"] != before["champion"]),
        "disagree": int(len(runs) != 1 or frozenset() in runs),
        "leftovers": len(after["leftovers"]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def report(rows: list[dict], seconds: float) -> str:
    lines = [
        (
            "| kill point (recpipe run) | killed | rows lost | alias moved early | orphans | "
            "next run | alias moved by then | disagree | leftovers | s |"
        ),
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['point']} | {'yes' if r['killed'] else 'NO'} | {r['rows lost']} | "
            f"{r['alias moved before commit']} | {r['orphans']} | {r['next run']} | "
            f"{r['alias moved by then']} | "
            f"{r['disagree']} | {r['leftovers']} | {r['seconds']} |"
        )
    lines.append(f"flow matrix time: {seconds:.1f} s")
    return "\n".join(lines)
