"""Where a workspace publishes (its root and database), the tables a run publishes, and
how the published tables are read back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from tasks.storage import database as db
from tasks.storage import lake

RECOMMENDATIONS = "recommendations"
SIMILAR_ITEMS = "similar_items"


@dataclass(frozen=True)
class Output:
    """One table of a run: its name, kind and the Parquet file (or folder) of its rows."""

    name: str
    kind: str
    source: Path


@dataclass(frozen=True)
class Stores:
    """Where a workspace publishes: its root (journal, staged files, lake tables) and
    the database URL."""

    root: Path
    database_url: str

    @property
    def journal(self) -> Path:
        return self.root / "journal"

    @property
    def staged(self) -> Path:
        return self.root / "publish"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def lake(self, name: str) -> Path:
        return self.tables / name

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)


def read_lake_table(root: Path, run_date: date | None = None) -> pd.DataFrame:
    """A published lake table (``Stores.lake(name)``): one date, or all."""
    return lake.read_table(root, run_date)


def read_database_table(
    url: str, name: str, run_date: date | None = None, kind: str = RECOMMENDATIONS
) -> pd.DataFrame:
    """A published database table: one date, or all."""
    return db.read_table(url, name, run_date, kind)
