"""One failure path: any error ends in one line on stderr, exit 2, the traceback in a log.

Bad input is refused by the preflight (tasks/preflight.py) before Prefect and MLflow
start; errors a stage raises (a full disk, a permission refused, wrapped by Prefect or a
library) are unwrapped to their root cause and named with their stage.
"""

from __future__ import annotations

import errno
import gzip
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main
from flows.measure import mark_stage
from tests.conftest import run_command

REPO = Path(__file__).resolve().parents[2]


def recpipe(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = run_command(
        [sys.executable, "-m", "flows.cli", *args],
        timeout=300,
        cwd=REPO,
    )
    return done, time.perf_counter() - start


def last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def log_of(line: str) -> Path:
    assert "(traceback: " in line, line
    return Path(line.rsplit("(traceback: ", 1)[1].rstrip(")"))


def test_a_missing_column_fails_before_prefect_starts(tmp_path) -> None:
    data = tmp_path / "events.csv"
    data.write_text("uid,item_id,timestamp\n1,2,1700000000\n")
    ws = tmp_path / "ws"
    done, seconds = recpipe("--workspace", str(ws), "run", "--source", "files", "--path", str(data))
    print(f"missing column: failed in {seconds:.2f} s")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = last_line(done.stderr)
    assert line.startswith("recpipe: stage preflight failed: events.csv: column 'user_id'")
    assert "--user-col" in line
    assert "Traceback" not in done.stderr
    assert not (ws / "prefect").exists()  # Prefect never started
    assert "DataError" in log_of(line).read_text()
    assert seconds < 20  # a generous bound; it takes about 1 s


def test_a_wrong_path_fails_before_prefect_starts(tmp_path) -> None:
    missing = tmp_path / "nowhere.csv"
    done, seconds = recpipe(
        "--workspace", str(tmp_path / "ws"), "run", "--source", "files", "--path", str(missing)
    )
    print(f"wrong path: failed in {seconds:.2f} s")
    assert done.returncode == 2, done.stderr
    line = last_line(done.stderr)
    assert f"input path {missing} does not exist" in line
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_workspace_that_cannot_be_created_is_refused(tmp_path) -> None:
    data = tmp_path / "events.csv"
    data.write_text("user_id,item_id,timestamp\n1,2,1700000000\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done, _ = recpipe(
        "--workspace", str(blocker / "ws"), "run", "--source", "files", "--path", str(data)
    )
    assert done.returncode == 2, done.stderr
    line = last_line(done.stderr)
    assert f"workspace {blocker / 'ws'}: cannot be created, {blocker} is a file" in line
    assert log_of(line).is_file()  # in the temporary folder, as the workspace cannot hold it


def test_a_stage_error_in_a_real_run_is_one_line_without_prefect_tracebacks(tmp_path) -> None:
    """A gzip'd Parquet file is read whole by ingest only (the preflight reads no schema
    from it), so its missing column fails in the ingest stage, inside Prefect."""
    import pandas as pd

    data = tmp_path / "events.parquet"
    pd.DataFrame({"uid": ["1"], "item_id": ["2"], "timestamp": [1700000000]}).to_parquet(data)
    packed = tmp_path / "events.parquet.gz"
    packed.write_bytes(gzip.compress(data.read_bytes()))
    ws = tmp_path / "ws"
    done, seconds = recpipe(
        "--workspace", str(ws), "run", "--source", "files", "--path", str(packed)
    )
    print(f"stage error: failed in {seconds:.1f} s\n{done.stderr}")
    assert done.returncode == 2, done.stderr
    line = last_line(done.stderr)
    assert line.startswith("recpipe: stage ingest failed: events.parquet.gz: column 'user_id'")
    assert "Traceback" not in done.stdout + done.stderr
    assert "ERROR" not in done.stdout + done.stderr  # Prefect's own failure lines
    assert "DataError" in log_of(line).read_text()


@pytest.fixture
def failing_night(monkeypatch, tmp_path):
    """`recpipe run` whose night raises ``error`` from stage ``publish``, wrapped the way
    Prefect and libraries wrap (``raise ... from``); no Prefect, no environment changes."""
    import flows.cli.run
    import flows.nightly

    def install(error: BaseException) -> None:
        def night(**_: object) -> None:
            try:
                raise error
            except BaseException as exc:
                mark_stage(exc, "publish")
                raise RuntimeError("Flow run encountered an exception") from exc

        monkeypatch.setattr(flows.cli.run, "prepare", lambda *a, **k: None)
        monkeypatch.setattr(flows.nightly, "nightly_flow_for", lambda config: night)

    return install


def run_args(ws: Path, *extra: str) -> list[str]:
    return ["--workspace", str(ws), *extra, "run", "--demo-users", "20", "--demo-items", "30"]


def test_a_permission_error_in_a_stage_is_one_line_and_a_log(
    tmp_path, failing_night, capsys
) -> None:
    ws = tmp_path / "ws"
    table = ws / "tables" / "recommendations"
    failing_night(PermissionError(errno.EACCES, "Permission denied", str(table)))
    assert main(run_args(ws)) == 2
    err = capsys.readouterr().err
    print(err)
    assert len(err.strip().splitlines()) == 1, err
    line = last_line(err)
    assert line.startswith(f"recpipe: stage publish failed: permission denied on {table}: ")
    assert "--workspace" in line
    log = log_of(line)
    assert log.parent == (ws / "logs").resolve() or log.parent == ws / "logs"
    assert "PermissionError" in log.read_text()
    assert "Traceback" in log.read_text()


def test_a_full_disk_names_the_file_being_written(tmp_path, failing_night, capsys) -> None:
    ws = tmp_path / "ws"
    part = ws / "scores" / "part-0.parquet"
    failing_night(OSError(errno.ENOSPC, "No space left on device", str(part)))
    assert main(run_args(ws)) == 2
    line = last_line(capsys.readouterr().err)
    print(line)
    assert f"stage publish failed: no space left on device writing {part}: free space" in line


def test_debug_prints_the_traceback_too(tmp_path, failing_night, capsys) -> None:
    ws = tmp_path / "ws"
    failing_night(OSError(errno.ENOSPC, "No space left on device", str(ws / "x")))
    assert main(run_args(ws, "--debug")) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: Flow run encountered an exception" in err
    assert last_line(err).startswith("recpipe: stage publish failed: no space left on device")


def test_an_unexpected_library_error_is_one_line_too(tmp_path, failing_night, capsys) -> None:
    failing_night(KeyError("model_version"))
    assert main(run_args(tmp_path / "ws")) == 2
    line = last_line(capsys.readouterr().err)
    assert line.startswith("recpipe: stage publish failed: ")
    assert "model_version" in line and "--debug" in line


def test_too_little_free_space_is_refused_before_the_run(tmp_path, monkeypatch, capsys) -> None:
    import shutil

    import tasks.preflight

    data = tmp_path / "events.csv"
    data.write_text("user_id,item_id,timestamp\n1,2,1700000000\n")
    real = shutil.disk_usage

    def nearly_full(path):
        usage = real(path)
        return usage._replace(free=50 * 2**20)

    monkeypatch.setattr(tasks.preflight.shutil, "disk_usage", nearly_full)
    ws = tmp_path / "ws"
    assert main(["--workspace", str(ws), "run", "--source", "files", "--path", str(data)]) == 2
    line = last_line(capsys.readouterr().err)
    print(line)
    assert f"workspace {ws}: 50 MB free on its disk; expected at least 200 MB" in line
    assert "--workspace" in line


def test_a_header_is_read_with_the_configured_delimiter_and_mapping(tmp_path) -> None:
    from tasks.config import FilesConfig
    from tasks.errors import DataError
    from tasks.preflight import check_files

    data = tmp_path / "events.csv"
    data.write_text("\ufeffuid;iid;ts\n1;2;1700000000\n")
    mapped = FilesConfig(path=data, user_col="uid", item_col="iid", timestamp_col="ts")
    assert check_files(mapped.model_copy(update={"delimiter": ";"})) == data.stat().st_size
    with pytest.raises(DataError, match="looks ';'-delimited"):
        check_files(mapped)


@pytest.mark.parametrize(
    ("facts", "says", "never"),
    [
        (
            {"state": "done", "tables": ["recommendations", "similar_items"], "database": True,
             "lake": ["recommendations", "similar_items"]},
            "This run's tables were published before it failed (recommendations, similar_items",
            "Nothing was published",
        ),
        (
            {"state": "lake:recommendations", "tables": ["recommendations", "similar_items"],
             "database": True, "lake": ["recommendations"]},
            "in the lake, recommendations has them and similar_items not yet",
            "Nothing was published",
        ),
        (
            {"state": "none", "tables": [], "database": False, "lake": []},
            "stage report failed: no space left on device",
            "published",
        ),
    ],
)  # fmt: skip
def test_the_failure_line_says_what_the_run_published(
    tmp_path, monkeypatch, capsys, facts, says, never
) -> None:
    """The facts are what flows/night.py reads from the publish journal when a run fails
    (tests/tasks/storage/test_published.py derives them from real publishes)."""
    import flows.cli.run
    import flows.nightly

    ws = tmp_path / "ws"

    def night(**_: object) -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(ws / "report.png"))
        except OSError as exc:
            mark_stage(exc, "report")
            exc.recpipe_publication = facts
            raise RuntimeError("Flow run encountered an exception") from exc

    monkeypatch.setattr(flows.cli.run, "prepare", lambda *a, **k: None)
    monkeypatch.setattr(flows.nightly, "nightly_flow_for", lambda config: night)
    assert main(run_args(ws)) == 2
    line = last_line(capsys.readouterr().err)
    print(line)
    assert line.startswith("recpipe: stage report failed: no space left on device")
    assert says in line and never not in line.split("(traceback:")[0]


def test_a_full_disk_in_a_library_names_the_file_it_was_writing() -> None:
    import errno

    from flows.cli.failure import describe

    def write_yaml(root: str) -> None:  # as MLflow's own: the path in a local of its name
        yaml_file_name = f"{root}/registered_model_meta"
        assert yaml_file_name
        raise OSError(errno.ENOSPC, "No space left on device")

    try:
        write_yaml("/srv/ws/mlflow/artifacts")
    except OSError as exc:
        line = describe(exc)
    assert "no space left on device writing /srv/ws/mlflow/artifacts/registered_model_meta" in line
