"""The landing folder: daily drops ingested exactly once into a raw store by ingest date.

Each run:

1. lists the landing folder (hidden and partially written files are not read, and are
   listed in the stats);
2. hashes every file (sha256 of its bytes); a hash already in the manifest is skipped,
   whatever the file is called now, so a re-run, or yesterday's file under a new name,
   ingests nothing;
3. reads the new files (``tasks/sources/files.py``), then drops events already in the
   store (exact match on user_id, item_id, timestamp, value, event_type);
4. appends the rest to ``<store>/ingest_date=<date>/interactions.parquet`` and only then
   records the files in ``<store>/_landing_manifest.json``.

Both writes go through a temporary file of their own and a rename. A crash between them
leaves files not in the manifest whose events are in the store: the next run reads them
again and the event dedup drops them, so nothing is stored twice. A file that vanishes
between listing and reading is reported and left out of the manifest (read when it comes
back); a file whose size or modification time changed while it was read is still being
written (copied without a .part name): it is skipped, listed in ``files_still_changing``
and left out of the manifest, so the next run reads it whole; a file that cannot be read stops
the run with ``DataError`` and nothing is recorded.

Nights of different dates may run at once and share the manifest and the store: a run
holds the manifest's lock (``_landing_manifest.json.lock``) from reading the manifest to
writing it, so two nights never both ingest one new file, nor lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.file_listing import list_data_files
from tasks.sources.file_reader import SourceFileVanished
from tasks.sources.files import read_interactions
from tasks.sources.mapping import SOURCE_FILE, SOURCE_ROW, SOURCE_TEXT
from tasks.storage.shared_files import locked, replace_atomically, write_json

MANIFEST = "_landing_manifest.json"
PARTITION_FILE = "interactions.parquet"
EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "value", "event_type"]
# Held for a whole landing ingest (hashing and reading the new files included), so it is
# not short: a night waits behind another night's ingest of the same drops.
LOCK_WAIT_SECONDS = 1800.0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(store_root: Path) -> dict:
    path = store_root / MANIFEST
    if not path.is_file():
        return {"version": 1, "files": {}, "partitions": []}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: the landing manifest is not valid JSON ({exc}); expected the file "
            "recpipe writes; restore it from a backup (deleting it re-reads every file; the "
            "event dedup then drops what is already stored)"
        ) from exc
    manifest.setdefault("files", {})
    manifest.setdefault("partitions", [])
    return manifest


def event_keys(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of the event columns, stable across dtypes and units."""
    key = pd.DataFrame(index=frame.index)
    for column in EVENT_COLUMNS:
        values = frame[column] if column in frame.columns else pd.Series(pd.NA, index=frame.index)
        if column == "timestamp":
            key[column] = values.astype("datetime64[ns, UTC]").astype("int64")
        elif column == "value":
            key[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            key[column] = values.astype(object).where(values.notna(), None)
    return pd.util.hash_pandas_object(key, index=False).to_numpy()


def _stored_keys(store_root: Path, manifest: dict) -> np.ndarray:
    keys = [np.empty(0, dtype=np.uint64)]
    for partition in manifest["partitions"]:
        path = store_root / partition / PARTITION_FILE
        if path.is_file():
            keys.append(event_keys(pd.read_parquet(path)))
    return np.concatenate(keys)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.array([], dtype="str"),
            "item_id": pd.array([], dtype="str"),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            SOURCE_FILE: pd.array([], dtype="str"),
            SOURCE_ROW: pd.array([], dtype="int64"),
            SOURCE_TEXT: pd.array([], dtype="str"),
        }
    )


def ingest_landing(
    config: FilesConfig, partition_dir: Path, ingest_date: date
) -> tuple[pd.DataFrame, dict]:
    """Ingest new landing files into ``partition_dir`` (``<store>/ingest_date=<date>``).

    Returns the whole partition (events first stored on ``ingest_date``, this run's and
    any earlier run's of the same date) and the stats of this run.
    """
    if config.path is None:
        raise DataError(
            "source 'landing' needs ingest.files.path; expected the folder where daily files "
            "are dropped; pass --path"
        )
    landing = Path(config.path).expanduser()
    if not landing.is_dir():
        raise DataError(
            f"landing folder {landing} does not exist or is not a folder; expected the folder "
            "where daily files are dropped; create it or check --path"
        )
    partition_dir = Path(partition_dir)
    store_root = partition_dir.parent
    with locked(store_root / MANIFEST, LOCK_WAIT_SECONDS, what="the landing manifest"):
        return _ingest_new_files(config, landing, partition_dir, ingest_date)


def _ingest_new_files(
    config: FilesConfig, landing: Path, partition_dir: Path, ingest_date: date
) -> tuple[pd.DataFrame, dict]:
    """The body of :func:`ingest_landing`, run under the manifest's lock."""
    store_root = partition_dir.parent
    manifest = load_manifest(store_root)
    paths, not_read = list_data_files(landing)

    vanished: list[str] = []
    repeated: list[dict] = []
    new: dict[str, Path] = {}
    for path in paths:
        name = path.relative_to(landing).as_posix()
        try:
            digest = file_sha256(path)
        except FileNotFoundError:
            vanished.append(name)
            continue
        seen = manifest["files"].get(digest)
        if seen is not None:
            repeated.append(
                {"file": name, "same_as": seen["file"], "ingested_on": seen["ingest_date"]}
            )
        elif digest in new:
            repeated.append({"file": name, "same_as": new[digest].name, "ingested_on": None})
        else:
            new[digest] = path

    frames, per_file, changing = [], {}, []
    # data without a timestamp column: its events are stamped with their ingest date
    untimed = {} if config.timed else {"stamp": untimed_stamp(ingest_date)}
    for digest, path in list(new.items()):
        name = path.relative_to(landing).as_posix()
        try:
            before = _size_and_mtime(path)
            frame, stats = read_interactions(path, config, name, **untimed)
            changed = _size_and_mtime(path) != before
        except (SourceFileVanished, FileNotFoundError):
            vanished.append(name)
            del new[digest]
            continue
        if changed:  # still being written: what was read may be a prefix; next run reads it
            changing.append(name)
            del new[digest]
            continue
        per_file[name] = stats
        frames.append(frame)
    incoming = pd.concat(frames, ignore_index=True) if frames else _empty_events()

    stored = _stored_keys(store_root, manifest)
    already = np.isin(event_keys(incoming), stored) if len(incoming) else np.zeros(0, bool)
    fresh = incoming[~already].reset_index(drop=True)
    target = partition_dir / PARTITION_FILE
    existing = pd.read_parquet(target) if target.is_file() else _empty_events()
    parts = [f for f in (existing, fresh) if len(f)] or [_empty_events()]
    partition = pd.concat(parts, ignore_index=True)
    partition["timestamp"] = partition["timestamp"].astype("datetime64[ns, UTC]")

    partition_dir.mkdir(parents=True, exist_ok=True)
    _atomic_parquet(partition, target)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for digest, path in new.items():
        name = path.relative_to(landing).as_posix()
        manifest["files"][digest] = {
            "file": name,
            "bytes": path.stat().st_size if path.exists() else None,
            "ingest_date": ingest_date.isoformat(),
            "rows": per_file[name]["rows"],
            "ingested_at": now,
        }
    if partition_dir.name not in manifest["partitions"]:
        manifest["partitions"].append(partition_dir.name)
    write_json(manifest, store_root / MANIFEST, sort_keys=True)

    stats = {
        "files_ingested": sorted(per_file),
        "files_already_ingested": repeated,
        "files_vanished": vanished,
        "files_still_changing": changing,
        "files_not_read": not_read,
        "rows_in_new_files": len(incoming),
        "rows_already_stored": int(already.sum()),
        "rows_new": len(fresh),
        "rows_in_partition": len(partition),
        "per_file": per_file,
        "manifest": str(store_root / MANIFEST),
    }
    return partition, stats


def untimed_stamp(ingest_date: date) -> pd.Timestamp:
    """The time of events without a timestamp: the start (00:00 UTC) of their ingest date."""
    return pd.Timestamp(ingest_date, tz="UTC")


def _size_and_mtime(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    replace_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
