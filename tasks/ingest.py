"""Ingest: bring interactions (and item / user tables) from a source into the raw store.

Sources (``IngestConfig.source``):

* ``demo``: the synthetic dataset of ``tasks/sources/demo.py`` (its items' pictures are
  written into ``raw_dir/images/``);
* ``movielens-100k|1m|20m|latest-small``: GroupLens releases (``tasks/sources/movielens.py``);
* ``files``: the user's CSV/Parquet files, read whole every run (``tasks/sources/files.py``);
* ``landing``: daily drops, each file ingested once, appended by ingest date
  (``tasks/sources/landing.py``).

Whatever the source, ``ingest.social.path`` (relations between users) is read whole and
written beside the interactions as ``edges.parquet`` (``tasks/sources/edges.py``).
Data without a timestamp column (``files.timestamp_col = "none"``) has each event
stamped with the start of the ingest date; the result says so (``timed``).

``load_source`` reads a source; :func:`ingest` writes its tables as Parquet into
``raw_dir`` (``<workspace>/raw/ingest_date=<date>``) and returns an :class:`IngestResult`;
``ingest_task`` is its Prefect task (retried on I/O failures).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from tasks.config import ContentConfig, IngestConfig
from tasks.data.content import SCHEMA_FILE, ContentSchema, content_schema, describe
from tasks.errors import DataError, RecpipeError
from tasks.sources.movielens_archive import DownloadError
from tasks.storage.cache import StageResult

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "value", "event_type"]


@dataclass(frozen=True)
class SourceData:
    """What a source produced: interactions, optional catalogs, and what happened."""

    interactions: pd.DataFrame | None  # None: written straight to the raw store
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    stats: dict = field(default_factory=dict)
    content: ContentSchema | None = None  # the catalogue's content columns, when read

    @property
    def rows(self) -> int:
        return len(self.interactions) if self.interactions is not None else self.stats["rows"]


def ingest_demo(config: IngestConfig, run_date: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo source: synthetic events up to the start (00:00 UTC) of ``run_date``."""
    from tasks.sources.demo import generate_demo

    shape = config.demo.model_dump(exclude={"mean_friends", "newcomers"})
    return generate_demo(**shape, end=pd.Timestamp(run_date, tz="UTC"))


def write_demo_images(config: IngestConfig, items: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The demo items' pictures written under ``folder`` (``images/``); ``items`` with
    their paths made absolute (tasks/sources/demo_content.py)."""
    from tasks.sources.demo import GENRES
    from tasks.sources.demo_content import write_demo_images as write

    genres = GENRES[: config.demo.n_genres]
    return write(items, folder, genres, seed=config.demo.seed)


def demo_edges(
    config: IngestConfig, interactions: pd.DataFrame, items: pd.DataFrame
) -> pd.DataFrame:
    """The demo's friendships (tasks/sources/demo.py) as the edges contract
    (tasks/sources/edges.py)."""
    import numpy as np

    from tasks.sources.demo import generate_demo_friends
    from tasks.sources.mapping import SOURCE_FILE, SOURCE_ROW

    demo = config.demo
    edges = generate_demo_friends(
        interactions, items, demo.mean_friends, demo.newcomers, seed=demo.seed
    )
    edges["ingest_issue"] = pd.array([None] * len(edges), dtype="str")
    edges[SOURCE_FILE] = pd.array(["demo"] * len(edges), dtype="str")
    edges[SOURCE_ROW] = np.arange(1, len(edges) + 1, dtype=np.int64)
    return edges


def load_source(
    config: IngestConfig,
    run_date: date,
    *,
    raw_dir: Path | None = None,
    cache_dir: Path | None = None,
    write_to: Path | None = None,
    content: ContentConfig | None = None,
) -> SourceData:
    """Read the configured source. ``raw_dir`` is needed by "landing" (it writes the store
    partition itself); ``cache_dir`` by MovieLens downloads. ``write_to``: the "files"
    source writes its interactions to this Parquet file a batch at a time instead of
    returning them (``interactions`` is None), so a large source never sits in memory.
    ``content``: the ``[content]`` section; an item catalog file is read with its content
    columns (tasks/data/content.py)."""
    source = config.source
    if source == "demo":
        interactions, items = ingest_demo(config, run_date)
        if raw_dir is not None:  # the items' pictures, beside the items table written next
            items = write_demo_images(config, items, Path(raw_dir))
        return SourceData(interactions, items, None, {"timestamp_unit": "s"})
    if source.startswith("movielens-"):
        from tasks.sources.movielens import load_movielens

        cache = config.movielens.cache_dir or cache_dir
        if cache is None and config.movielens.path is None:
            raise ValueError("a MovieLens download needs cache_dir or movielens.cache_dir")
        data = load_movielens(source, config.movielens, Path(cache or ".").expanduser())
        return SourceData(data.interactions, data.items, data.users, data.stats)
    items, schema = None, None
    if config.files.items_path is not None:
        from tasks.sources.files import read_catalog_content, read_items_catalog

        if content is None:
            items = read_items_catalog(config.files.items_path, config.files)
        else:
            items, schema = read_catalog_content(config.files.items_path, config.files, content)
    source_data = functools.partial(SourceData, content=schema)
    if source == "files":
        from tasks.sources.files import read_files, write_files
        from tasks.sources.landing import untimed_stamp

        stamp = untimed_stamp(run_date)
        if write_to is not None:
            stats = write_files(config.files, write_to, stamp=stamp)
            return source_data(None, items, None, _file_summary(stats))
        interactions, stats = read_files(config.files, stamp)
        return source_data(interactions, items, None, _file_summary(stats))
    if source == "landing":
        from tasks.sources.landing import ingest_landing

        if raw_dir is None:
            raise ValueError("source 'landing' needs raw_dir (the store partition to append to)")
        partition, stats = ingest_landing(config.files, Path(raw_dir), run_date)
        return source_data(partition, items, None, {**_file_summary(stats), "incremental": True})
    raise ValueError(f"unknown source {source!r}")


def _file_summary(stats: dict) -> dict:
    """Lift the per-file timestamp forms into one ``timestamp_unit`` entry."""
    per_file = stats.get("per_file") or stats.get("files") or {}
    units = {name: s["timestamp_unit"] for name, s in per_file.items()}
    distinct = set(units.values())
    unit = distinct.pop() if len(distinct) == 1 else (units or None)
    out = {k: v for k, v in stats.items() if k not in ("files", "per_file")}
    out.update(
        timestamp_unit=unit,
        ids_whitespace_stripped=sum(s["ids_whitespace_stripped"] for s in per_file.values()),
        ids_float_suffix_removed=sum(s["ids_float_suffix_removed"] for s in per_file.values()),
        ids_unicode_normalized=sum(s.get("ids_unicode_normalized", 0) for s in per_file.values()),
        columns_ignored=sorted({c for s in per_file.values() for c in s["columns_ignored"]}),
        files_truncated=sorted(n for n, s in per_file.items() if s.get("truncated_last_line")),
        files=per_file,
    )
    naive = sum(s.get("timestamps_without_zone", 0) for s in per_file.values())
    if naive:  # said once for the whole source, not per row
        out["timestamp_zone_assumed"] = f"UTC for {naive} ISO timestamps written without a zone"
    out.setdefault("files_ingested", sorted(per_file))
    return out


class IngestResult(StageResult):
    """What ingest wrote to the raw store, and what it saw of the source."""

    source: str
    rows: int
    interactions_path: str
    items_path: str | None = None
    users_path: str | None = None
    content_path: str | None = None  # the catalogue's content schema (items_content.json)
    edges_path: str | None = None  # relations between users, when ingest.social.path is set
    edges_direction: str | None = None  # "mutual" or "follows", with edges_path
    timed: bool = True  # False: the source has no timestamps (events stamped at ingest)
    timestamp_unit: Any = None  # one unit, or one per file when they differ
    incremental: bool = False
    rows_new: int = 0
    files_ingested: list[Any] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)


def _retry_io_only(task: object, task_run: object, state: object) -> bool:
    """Retry downloads and unexpected I/O failures; bad input fails the same way every time."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        try:
            state.result()  # type: ignore[attr-defined]
        except BaseException as raised:  # noqa: BLE001 - only inspected
            exc = raised
    return not isinstance(exc, RecpipeError) or isinstance(exc, DownloadError)


def _run_name(parameters: dict) -> str:
    """``ingest-<source>`` (``ingest-movielens_100k``: one dash-free word after the stage)."""
    source = getattr(parameters.get("config"), "source", None) or "source"
    return f"ingest-{str(source).replace('-', '_')}"


def ingest(
    config: IngestConfig,
    run_date: date,
    raw_dir: str,
    workspace_root: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    content: ContentConfig | None = None,
) -> IngestResult:
    """Write today's raw interactions, items and users to ``raw_dir`` as Parquet.

    ``workspace_root`` holds the MovieLens download cache (``<root>/cache/movielens``);
    by default it is the grandparent of ``raw_dir`` (``<root>/raw/ingest_date=...``).
    ``content``: the ``[content]`` section; the item catalog's content columns are kept
    in ``items.parquet`` and their schema written beside it (``items_content.json``).
    """
    out = Path(raw_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(workspace_root) if workspace_root else out.parent.parent
    interactions_path = out / "interactions.parquet"
    data = load_source(
        config,
        run_date,
        raw_dir=out,
        cache_dir=root / "cache" / "movielens",
        write_to=interactions_path,
        content=content,
    )
    if data.interactions is not None and config.source != "landing":  # landing wrote its own
        data.interactions.to_parquet(interactions_path, index=False)
    paths: dict[str, Path | None] = {}
    for name, table in (("items", data.items), ("users", data.users)):
        paths[name] = None
        if table is not None:
            paths[name] = out / f"{name}.parquet"
            table.to_parquet(paths[name], index=False)
    stats = data.stats
    content_path = write_content_schema(data, content, out)
    if content_path is not None:
        stats["content"] = describe(ContentSchema.read(content_path))
    edges_path = None
    if config.social.path is not None:
        edges_path, stats["social"] = write_edges(config, out / "edges.parquet")
    elif config.source == "demo" and config.demo.mean_friends > 0:
        assert data.interactions is not None and data.items is not None
        edges = demo_edges(config, data.interactions, data.items)
        edges_path = out / "edges.parquet"
        edges.to_parquet(edges_path, index=False)
        stats["social"] = {"rows": len(edges), "direction": "mutual", "demo": True}
    timed = config.source not in ("files", "landing") or config.files.timed
    (logger or logging.getLogger(__name__)).info(
        "ingest %s: %d interaction rows%s; timestamps: %s%s",
        config.source,
        data.rows,
        f" ({stats['rows_new']} new)" if "rows_new" in stats else "",
        stats.get("timestamp_unit"),
        "".join(f"; {note}" for note in stats.get("notes", [])),
    )
    return IngestResult(
        source=config.source,
        rows=data.rows,
        interactions_path=str(interactions_path),
        items_path=str(paths["items"]) if paths["items"] else None,
        users_path=str(paths["users"]) if paths["users"] else None,
        content_path=str(content_path) if content_path else None,
        edges_path=str(edges_path) if edges_path else None,
        edges_direction=(
            ("mutual" if config.social.path is None else config.social.direction)
            if edges_path
            else None
        ),
        timed=timed,
        timestamp_unit=stats.get("timestamp_unit"),
        incremental=bool(stats.get("incremental", False)),
        rows_new=int(stats.get("rows_new", data.rows)),
        files_ingested=stats.get("files_ingested", []),
        stats=stats,
    )


def write_content_schema(data: SourceData, content: ContentConfig | None, out: Path) -> Path | None:
    """The catalogue's content schema as ``items_content.json`` in ``out``; None when the
    catalogue has no content (or there is no catalogue)."""
    if content is None:
        return None
    if data.items is None:
        if content.declared:
            raise DataError(
                "content columns are declared in [content] but the source has no item "
                "catalog; expected one with those columns; set ingest.files.items_path "
                "(--items-path) or remove the [content] declarations"
            )
        return None
    schema = data.content if data.content is not None else content_schema(data.items, content)
    if not schema:
        return None
    path = out / SCHEMA_FILE
    path.write_text(schema.to_json(), encoding="utf-8")
    return path


def write_edges(config: IngestConfig, dest: Path) -> tuple[Path, dict]:
    """The relations between users to ``dest`` (Parquet, through a temporary file and a
    rename); their stats, with the sha256 of the files read (``data``)."""
    from tasks.sources.edges import read_edges
    from tasks.storage.cache import tree_digest
    from tasks.storage.shared_files import replace_atomically

    assert config.social.path is not None
    edges, stats = read_edges(config.social)
    replace_atomically(dest, lambda tmp: edges.to_parquet(tmp, index=False))
    return dest, {**stats, "data": tree_digest(config.social.path)}


# Prefect's TaskRunNameCallbackWithParameters protocol includes a classmethod, so no plain
# function matches it; Prefect calls a callback that takes ``parameters`` with them.
@task(
    name="ingest",
    task_run_name=_run_name,  # type: ignore[arg-type]  # Prefect protocol bug, above
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=_retry_io_only,
    cache_policy=NO_CACHE,
)
def ingest_task(
    config: IngestConfig,
    run_date: date,
    raw_dir: str,
    workspace_root: str | None = None,
    content: ContentConfig | None = None,
) -> IngestResult:
    return ingest(config, run_date, raw_dir, workspace_root, get_run_logger(), content)
