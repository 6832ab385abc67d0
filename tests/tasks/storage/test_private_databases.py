"""The workspace's SQLite databases are their owner's alone, whatever umask created them."""

from __future__ import annotations

import stat

from tasks.storage.workspace import Workspace


def test_databases_and_their_journals_lose_group_and_other_bits(tmp_path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    files = {
        ws.root / "mlflow" / "mlflow.db": 0o644,
        ws.root / "mlflow" / "mlflow.db-wal": 0o664,
        ws.root / "prefect" / "prefect.db": 0o666,
        ws.database_path: 0o640,
        ws.root / "recpipe.db-journal": 0o604,
        ws.root / "notes.txt": 0o644,  # not a database: left alone
    }
    for path, mode in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        path.chmod(mode)
    changed = ws.tighten_databases()
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in files}
    assert modes == {
        ws.root / "mlflow" / "mlflow.db": 0o600,
        ws.root / "mlflow" / "mlflow.db-wal": 0o600,
        ws.root / "prefect" / "prefect.db": 0o600,
        ws.database_path: 0o600,
        ws.root / "recpipe.db-journal": 0o600,
        ws.root / "notes.txt": 0o644,
    }
    assert len(changed) == 5


def test_a_stricter_mode_is_kept(tmp_path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    ws.database_path.write_bytes(b"x")
    ws.database_path.chmod(0o400)
    assert ws.tighten_databases() == []
    assert stat.S_IMODE(ws.database_path.stat().st_mode) == 0o400
