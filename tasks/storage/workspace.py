"""The workspace: one folder that holds everything a run writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: Path | str) -> Workspace:
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)  # user ids, histories, databases
        return cls(root)

    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _dated(self, name: str, day: date, key: str = "run_date") -> Path:
        """``<root>/<name>/<key>=<day>``, created."""
        return self._dir(name, f"{key}={day.isoformat()}")

    def raw(self, ingest_date: date) -> Path:
        return self._dated("raw", ingest_date, "ingest_date")

    def validated(self, run_date: date) -> Path:
        return self._dated("validated", run_date)

    @property
    def validation_root(self) -> Path:
        return self._dir("validation")

    def features(self, run_date: date) -> Path:
        return self._dated("features", run_date)

    def models(self, run_date: date) -> Path:
        return self._dated("models", run_date)

    def reports(self, run_date: date) -> Path:
        """The night's figures (tasks/report.py), logged to its MLflow parent run."""
        return self._dated("reports", run_date)

    def scores(self, run_date: date) -> Path:
        return self._dated("scores", run_date)

    @property
    def similarity_cache(self) -> Path:
        """Item-item similarities of validated data, by content (tasks/scoring/)."""
        return self._dir("cache", "similarity")

    @property
    def stage_markers(self) -> Path:
        """Skip markers of cached stages (tasks/storage/cache.py), one file per stage and date."""
        return self._dir("cache", "stages")

    @property
    def locks(self) -> Path:
        """Run locks (tasks/storage/locks.py): one file per run date, held while a run goes on."""
        return self._dir("locks")

    @property
    def tables(self) -> Path:
        return self._dir("tables")

    @property
    def mlflow_dir(self) -> Path:
        return self._dir("mlflow")

    @property
    def mlflow_uri(self) -> str:
        """Absolute sqlite URI, so the store never depends on the current directory."""
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self._dir("mlflow", "artifacts")

    @property
    def database_path(self) -> Path:
        return self.root / "recpipe.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database_path}"

    def tighten_databases(self) -> list[Path]:
        """Make the workspace's SQLite databases (MLflow's, Prefect's temporary server's,
        the default publish database) and their journals readable by their owner only,
        whatever umask created them; a stricter mode is kept. The paths changed."""
        changed = []
        for db in (self.root / "mlflow" / "mlflow.db", self.root / "prefect" / "prefect.db",
                   self.database_path):  # fmt: skip
            for path in (db, *(Path(f"{db}-{end}") for end in ("journal", "wal", "shm"))):
                try:
                    mode = path.stat().st_mode & 0o777
                    if mode & 0o077:
                        path.chmod(mode & 0o700)
                        changed.append(path)
                except FileNotFoundError:
                    continue
        return changed
