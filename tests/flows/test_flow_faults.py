"""A real ``recpipe run`` killed with SIGKILL right after its database commit.

The publish-level matrix (tests/tasks/test_publish_faults.py) covers every step; this is
the whole product: the CLI, its temporary Prefect server, the champion alias, and the
next night's recovery. ``recpipe bench publish-faults --flow`` runs every kill point.
"""

from __future__ import annotations

from pathlib import Path

from flows.bench import flow_faults


def test_a_run_killed_after_its_database_commit_is_finished_by_the_next_run(tmp_path: Path):
    base = flow_faults.base_workspace(tmp_path)
    row = flow_faults.kill_case(base, tmp_path, "publish:database-committed")
    assert row["killed"]
    assert row["rows lost"] == 0, "yesterday's rows changed"
    assert row["alias moved before commit"] == 0, "the alias moved before the tables committed"
    assert row["orphans"] == 0, "the killed run left processes running"
    assert row["next run"] == "ok"
    assert row["alias moved by then"] == 1  # the night's promotion did take effect later
    assert row["disagree"] == 0 and row["leftovers"] == 0
