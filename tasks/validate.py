"""Validate interactions (and the item / user tables): quarantine bad rows, drop duplicates,
reject bad batches.

``validate_interactions`` checks a table in memory; :func:`validate` reads the ingest
Parquet files and writes the accepted and quarantined tables (``validate_task`` is its
Prefect task, which also publishes the Markdown summary as an artifact). Great Expectations
decides which rows fail (suites in ``expectations/``), each run
in a GX context of its own (``expectations/runner.py``); the GX project under ``gx_root``
keeps every validation result and the one Data Docs site that lists them all. Row
accounting always holds, per table: rows read = accepted + quarantined + duplicates dropped.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from expectations.report import (
    summary_markdown,
)
from tasks.config import ContentConfig, ValidateConfig
from tasks.errors import DataError, DataValidationError
from tasks.storage.cache import StageResult
from tasks.storage.shared_files import replace_atomically, update_json, write_json
from tasks.validation.checks import (
    ARTIFACT_KEY,
    VOLUME_HISTORY,
    validate_interactions,
)


def _run_name(parameters: dict) -> str:
    """``validate-<tables>``: ``validate-interactions+items+users`` or fewer."""
    tables = ["interactions"] + [
        name for name in ("items", "users") if parameters.get(f"{name}_path")
    ]
    return "validate-" + "+".join(tables)


class ValidateResult(StageResult):
    """The row accounting of a validation and where the accepted and quarantined tables
    are (``items_path``, ``users_path`` and their quarantines ride along when given)."""

    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    duplicates_dropped: int
    rows_total: int
    accounting: str
    flagged: Any
    volume: Any
    history_snapshot: str | None
    tables: dict[str, Any]
    accepted_path: str
    quarantine_path: str
    data_docs_index: str | None
    expectations: Any
    edges_path: str | None = None  # the relations between users kept, when given
    edges_quarantine_path: str | None = None
    content_path: str | None = None  # the catalogue's content schema, when it has content
    content_quarantine_path: str | None = None  # the content values quarantined
    artifact: bool = False


Artifact = Callable[[str], bool]


def validate(
    raw_path: str,
    out_dir: str,
    gx_root: str,
    config: ValidateConfig,
    now_iso: str,
    *,
    items_path: str | None = None,
    users_path: str | None = None,
    edges_path: str | None = None,
    edges_direction: str = "mutual",
    accumulate: bool = False,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    artifact: Artifact | None = None,
    content_path: str | None = None,
    content: ContentConfig | None = None,
) -> ValidateResult:
    """Validate the ingested Parquet files; write the accepted and quarantined tables.

    Writes ``interactions.parquet`` and ``quarantine.parquet`` (plus ``items.parquet``,
    ``items_quarantine.parquet``, ``users.parquet``, ``users_quarantine.parquet`` when those
    paths are given) and ``validation_summary.json`` into ``out_dir``. Row counts of passing
    runs are kept in ``<gx_root>/volume_history.json``, keyed by ``out_dir``'s name
    (``run_date=...``), for the volume check; nights of different dates may run at once, so
    that file is updated under its lock (``tasks/storage/shared_files.py``). ``accumulate``
    (incremental sources such as the landing folder): ``interactions.parquet`` becomes the
    latest earlier snapshot (``<out_dir>/../<prefix>=<earlier>/interactions.parquet``) plus
    today's accepted rows. ``edges_path``: the relations between users (``mutual`` or
    ``follows``, ``edges_direction``), validated against the accepted interactions' users
    (tasks/validation/edges.py) into ``edges.parquet`` and ``edges_quarantine.parquet``.
    ``artifact(markdown)``: publishes the Markdown summary of the run, or of its failure
    (``validate_task`` passes :func:`publish_artifact`); what it returns is the result's
    ``artifact``. ``content_path``: the catalogue's content schema (``items_content.json``
    from ingest); the accepted items' content is checked (tasks/validation/content.py,
    limits from ``content``), bad values nulled in ``items.parquet`` and listed in
    ``content_quarantine.parquet``, and the schema copied beside them.
    """
    import pyarrow.parquet as pq

    from tasks.storage.parquet import concat_parquet, parquet_rows
    from tasks.validation.partitions import validate_in_partitions

    log = logger or logging.getLogger(__name__)
    artifact = artifact or (lambda markdown: False)
    out = Path(out_dir)
    raw = _input_file(raw_path, "interactions")
    items = pd.read_parquet(_input_file(items_path, "items")) if items_path else None
    users = pd.read_parquet(_input_file(users_path, "users")) if users_path else None
    history_file = Path(gx_root) / VOLUME_HISTORY
    history = _load_history(history_file, log)  # a plain read: the file is only ever replaced
    previous = [v["rows_read"] for k, v in sorted(history.items()) if k < out.name]
    now = pd.Timestamp(now_iso)
    partitioned = parquet_rows(raw) > config.part_rows
    work = out.parent / f".{out.name}.validating"  # the partitions of a large batch
    try:
        common = {
            "gx_root": Path(gx_root),
            "config": config,
            "now": now,
            "items": items,
            "users": users,
            "previous_volumes": previous,
            "run_name": out.name,
        }
        try:
            if partitioned:
                result, accepted_parts, quarantine_parts = validate_in_partitions(
                    raw, work, **common
                )
            else:
                result = validate_interactions(pq.read_table(raw), **common)
            snapshot = previous_snapshot(out) if accumulate else None
            edges = None
            if edges_path is not None:
                known = _accepted_users(result, accepted_parts if partitioned else [], snapshot)
                edges = _validate_edges(edges_path, edges_direction, known, common)
        except DataValidationError as exc:
            artifact(summary_markdown(None, failure=str(exc)))
            raise
        out.mkdir(parents=True, exist_ok=True)
        accepted_path, quarantine_path = out / "interactions.parquet", out / "quarantine.parquet"
        if partitioned:
            earlier = [snapshot] if snapshot is not None else []
            rows_total = concat_parquet([*earlier, *accepted_parts], accepted_path)
            concat_parquet(quarantine_parts, quarantine_path)
        else:
            accepted = result.accepted
            assert accepted is not None  # None only for partitions written straight to files
            if snapshot is not None:
                accepted = pa.concat_tables(
                    [pq.read_table(snapshot), accepted], promote_options="permissive"
                )
            rows_total = accepted.num_rows
            _write_parquet(accepted, accepted_path)
            _write_parquet(result.quarantined, quarantine_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    paths = {"accepted_path": accepted_path, "quarantine_path": quarantine_path}
    checked = None
    if content_path is not None and result.items is not None:
        checked = _validate_content(result.items.accepted, content_path, content, common, out)
        paths.update(checked[1])
    for table in (result.items, result.users):
        if table is not None:
            accepted_table = checked[0].items if checked and table.name == "items" else None
            paths[f"{table.name}_path"] = _write_parquet(
                table.accepted if accepted_table is None else accepted_table,
                out / f"{table.name}.parquet",
            )
            paths[f"{table.name}_quarantine_path"] = _write_parquet(
                table.quarantined, out / f"{table.name}_quarantine.parquet"
            )
    accounting = result.accounting
    if edges is not None:
        paths["edges_path"] = _write_parquet(edges.table.accepted, out / "edges.parquet")
        paths["edges_quarantine_path"] = _write_parquet(
            edges.table.quarantined, out / "edges_quarantine.parquet"
        )
        accounting = f"{accounting} | {edges.accounting}"
    if checked is not None:
        accounting = f"{accounting} | {checked[0].accounting}"
    entry = {"rows_read": result.rows_read, "recorded_at": _now_iso()}
    update_json(
        history_file,
        lambda history: {**history, out.name: entry},
        load=lambda path: _load_history(path, log),
    )
    summary_dict = {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_quarantined": result.rows_quarantined,
        "duplicates_dropped": result.duplicates_dropped,
        "rows_total": rows_total,
        "accounting": accounting,
        "flagged": result.flagged,
        "volume": result.volume,
        "history_snapshot": str(snapshot) if snapshot else None,
        "tables": {
            t.name: {
                "rows_read": t.rows_read,
                "rows_accepted": t.rows_accepted,
                "rows_quarantined": t.rows_quarantined,
                "duplicates_dropped": t.duplicates_dropped,
                "flagged": t.flagged,
            }
            for t in result.tables
        }
        | ({"edges": edges.summary()} if edges is not None else {})
        | ({"content": checked[0].summary()} if checked is not None else {}),
        **{k: str(v) for k, v in paths.items()},
        "data_docs_index": str(result.data_docs_index) if result.data_docs_index else None,
        "expectations": result.expectations,
    }
    write_json(summary_dict, out / "validation_summary.json")
    published = artifact(summary_markdown(result, summary=summary_dict))
    log.info("validate: %s; Data Docs %s", accounting, result.data_docs_index)
    return ValidateResult(**summary_dict, artifact=published)


# Prefect's TaskRunNameCallbackWithParameters protocol includes a classmethod, so no plain
# function matches it; Prefect calls a callback that takes ``parameters`` with them.
@task(name="validate", task_run_name=_run_name, cache_policy=NO_CACHE)  # type: ignore[arg-type]
def validate_task(
    raw_path: str,
    out_dir: str,
    gx_root: str,
    config: ValidateConfig,
    now_iso: str,
    *,
    items_path: str | None = None,
    users_path: str | None = None,
    edges_path: str | None = None,
    edges_direction: str = "mutual",
    accumulate: bool = False,
    content_path: str | None = None,
    content: ContentConfig | None = None,
) -> ValidateResult:
    return validate(
        raw_path,
        out_dir,
        gx_root,
        config,
        now_iso,
        items_path=items_path,
        users_path=users_path,
        edges_path=edges_path,
        edges_direction=edges_direction,
        accumulate=accumulate,
        logger=get_run_logger(),
        artifact=publish_artifact,
        content_path=content_path,
        content=content,
    )


def publish_artifact(markdown: str) -> bool:
    """Create the validation Markdown artifact; only inside a flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return False
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=markdown, description="recpipe data validation"
    )
    return True


def _input_file(path: str, name: str) -> Path:
    source = Path(path)
    if not source.is_file():
        raise DataError(
            f"validate: raw {name} file {source} not found; expected the Parquet file "
            "written by the ingest task; run ingest first or check the path"
        )
    return source


def _accepted_users(result: Any, parts: list[Path], snapshot: Path | None) -> pd.Series:
    """The users of the accepted interactions (this batch's and the snapshot's)."""
    import pyarrow.parquet as pq

    files = [*parts, *([snapshot] if snapshot is not None else [])]
    columns = [pq.read_table(p, columns=["user_id"])["user_id"] for p in files]
    accepted = result.accepted
    if isinstance(accepted, pd.DataFrame):
        accepted = pa.Table.from_pandas(accepted[["user_id"]], preserve_index=False)
    if accepted is not None:
        columns.append(accepted["user_id"])
    users = pa.chunked_array([c.cast(pa.large_string()) for c in columns], pa.large_string())
    return pd.Series(users.unique().to_pylist(), dtype="str")


def _validate_edges(path: str, direction: str, known: pd.Series, common: dict) -> Any:
    from tasks.validation.edges import validate_edges

    return validate_edges(
        pd.read_parquet(_input_file(path, "edges")),
        direction=direction,
        config=common["config"],
        known_users=known,
        gx_root=common["gx_root"],
        run_name=common["run_name"],
    )


def _validate_content(
    items: pd.DataFrame,
    content_path: str,
    content: ContentConfig | None,
    common: dict,
    out: Path,
) -> tuple[Any, dict[str, Path]]:
    """The accepted items' content checked; the content quarantine and the schema written
    into ``out``."""
    from expectations.content import ContentLimits
    from tasks.data.content import SCHEMA_FILE, ContentSchema
    from tasks.validation.content import validate_content

    schema = ContentSchema.read(_input_file(content_path, "content schema"))
    limits = ContentLimits((content or ContentConfig()).max_text_chars)
    checked = validate_content(
        items, schema, limits, gx_root=common["gx_root"], run_name=common["run_name"]
    )
    out.mkdir(parents=True, exist_ok=True)
    schema_path = out / SCHEMA_FILE
    replace_atomically(schema_path, lambda tmp: tmp.write_text(schema.to_json(), encoding="utf-8"))
    quarantine = _write_parquet(checked.quarantined, out / "content_quarantine.parquet")
    return checked, {"content_path": schema_path, "content_quarantine_path": quarantine}


def previous_snapshot(out: Path) -> Path | None:
    """The latest ``<prefix>=<earlier>/interactions.parquet`` next to ``out``."""
    prefix = out.name.split("=", 1)[0] + "="
    earlier = sorted(
        p for p in out.parent.glob(f"{prefix}*/interactions.parquet") if p.parent.name < out.name
    )
    return earlier[-1] if earlier else None


def _load_history(path: Path, log: logging.Logger | logging.LoggerAdapter) -> dict:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        log.warning("validate: %s unreadable; the volume check starts afresh", path)
        return {}


def _now_iso() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")


def _write_parquet(frame: pd.DataFrame | pa.Table, path: Path) -> Path:
    """Write via a temporary file, so a crash never leaves a half-written table behind."""
    import pyarrow.parquet as pq

    if isinstance(frame, pd.DataFrame):
        return replace_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return replace_atomically(path, lambda tmp: pq.write_table(frame, tmp))
