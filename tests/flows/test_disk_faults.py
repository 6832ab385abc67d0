"""Real disk faults, in a real ``recpipe run``: a read-only tables folder and a full disk.

Each run happens in a private mount namespace (``unshare --user --map-root-user --mount``,
no privileges needed where user namespaces are enabled): the tables folder is bind-mounted
read-only, and the workspace sits on a small tmpfs that a background writer fills while the
run waits at a checkpoint (``RECPIPE_PAUSE_AT``; the preflight's free-space check has
passed by then). What the user sees is asserted: exit code 2, one last line naming the
stage, the file and what to do, and no traceback on stderr; a failed publish leaves the
tables as they were.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_command

REPO = Path(__file__).resolve().parents[2]
CLI = f"{sys.executable} -m flows.cli"
ARGS = "--demo-users 20 --demo-items 30 --models popularity,ease"

SCRIPT = f"""
set -u
WS="$1"
# run <workspace> <output prefix> [options]: one real night, its output and exit code kept
run() {{
  (cd {REPO} && {CLI} --workspace "$1" run {ARGS} $3 >"$2.out" 2>"$2.err"); echo $? >"$2.rc"
}}
# 1. a night that publishes, then the same night again with its tables folder read-only
mkdir -p "$WS"
run "$WS" "$WS.1" ""
find "$WS/tables" -type f | sort | xargs sha256sum >"$WS.tables.before"
mount --bind "$WS/tables" "$WS/tables" && mount -o remount,bind,ro "$WS/tables" || exit 97
run "$WS" "$WS.2" --retrain
find "$WS/tables" -type f | sort | xargs sha256sum >"$WS.tables.after"
umount "$WS/tables"
# 2. a fresh workspace on a small disk that fills up while the run scores
FULL="$WS-full"
mkdir -p "$FULL" && mount -t tmpfs -o size=260m tmpfs "$FULL" || exit 97
GATE="$WS.gate"
( while [ ! -e "$GATE.reached" ]; do sleep 0.05; done
  dd if=/dev/zero of="$FULL/filler" bs=1M >/dev/null 2>&1; touch "$GATE" ) &
export RECPIPE_PAUSE_AT=score:planned RECPIPE_PAUSE_FILE="$GATE"
run "$FULL" "$WS.3" ""
"""


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason="needs unshare with user and mount namespaces"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    ws = root / "ws"
    script = root / "faults.sh"
    script.write_text(SCRIPT)
    done = run_command(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", str(script), str(ws)],
        timeout=900,
    )
    assert done.returncode != 97, f"could not mount: {done.stderr}"

    def read(name: str) -> str:
        path = Path(f"{ws}.{name}")
        return path.read_text() if path.exists() else ""

    return {"read": read, "ws": ws}


def failure(runs: dict, n: int) -> tuple[str, str]:
    """Run ``n``'s stderr and its last line, once it is known to have failed in one line
    (exit 2, no traceback)."""
    err = runs["read"](f"{n}.err")
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    print(lines[-1])
    assert runs["read"](f"{n}.rc").strip() == "2", err
    assert "Traceback" not in err, err
    return err, lines[-1]


def test_the_first_night_publishes(runs) -> None:
    assert runs["read"]("1.rc").strip() == "0", runs["read"]("1.err")


def test_a_read_only_tables_folder_is_one_line_and_changes_nothing(runs) -> None:
    _, line = failure(runs, 2)
    assert line.startswith("recpipe: stage publish failed: read-only file system on ")
    assert str(runs["ws"] / "tables") in line
    assert "move the workspace (--workspace) to a writable disk" in line
    before, after = runs["read"]("tables.before"), runs["read"]("tables.after")
    assert "recommendations" in before and before == after


def test_a_full_disk_names_the_stage_and_the_file(runs) -> None:
    err, line = failure(runs, 3)
    full = f"{runs['ws']}-full"
    assert line.startswith(f"recpipe: stage score failed: no space left on device writing {full}/")
    assert ": free space or move the workspace (--workspace)" in line
    assert "(traceback: " in line
    assert len(err.strip().splitlines()) <= 10, err  # a few warnings at most, then the line
