"""A database password never leaves the process: a nightly run publishing to PostgreSQL
with a password in its URL, then a search of everything it printed and wrote."""

from __future__ import annotations

import os
import stat
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_command

REPO = Path(__file__).resolve().parents[2]
URL = os.environ.get("RECPIPE_TEST_SECRET_POSTGRES_URL")


def _password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).password


@pytest.mark.skipif(not URL, reason="RECPIPE_TEST_SECRET_POSTGRES_URL not set (.ci/run sets it)")
def test_the_database_password_is_nowhere_in_output_logs_or_the_workspace(tmp_path: Path):
    password = _password(URL)
    workspace = tmp_path / "ws"
    table = f"secret_recs_{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")},
        "RECPIPE__PUBLISH__DATABASE_URL": URL,
        "RECPIPE__PUBLISH__TABLE": table,
        "RECPIPE__PUBLISH__SIMILAR_TABLE": f"{table}_similar",
    }
    args = ["--demo-users", "150", "--demo-items", "100", "--models", "popularity", "--k", "5"]
    done = run_command(
        [sys.executable, "-m", "flows.cli", "--workspace", str(workspace), "run", *args],
        timeout=600,
        cwd=REPO,
        env=env,
    )
    try:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "***@127.0.0.1" in done.stdout  # the URL is shown, masked
        assert password not in done.stdout and password not in done.stderr
        hits = [
            str(path)
            for path in workspace.rglob("*")
            if path.is_file() and password.encode() in path.read_bytes()
        ]
        assert hits == []  # MLflow store and artifacts, Prefect database, journal, logs
        assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
        store = workspace / "mlflow" / "mlflow.db"
        assert stat.S_IMODE(store.stat().st_mode) & 0o077 == 0
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(URL)
        with engine.begin() as conn:
            for name in (table, f"{table}_similar"):
                conn.execute(sa.text(f'DROP VIEW IF EXISTS "{name}_latest"'))
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()
