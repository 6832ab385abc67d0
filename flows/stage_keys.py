"""What each stage's skip-cache key covers (``tasks/storage/cache.py`` keeps the markers).

* ingest: the source settings and the run date, plus the *content* of what it reads: for
  "files" the file or folder (every file's bytes), for "landing" the landing folder's
  files (new drops change the key; a folder read once is not idempotent by its path), for
  MovieLens the zip or folder given, or the checksum a verified download must have; the
  demo source is its settings + run date (the generator is deterministic);
* validate: the raw files' bytes, its settings, the row counts of earlier runs (the
  volume check), the snapshot it accumulates onto (landing), and the clock it checks
  timestamps against (the as-of instant in a backfill, else today's date);
* features: the validated interactions' bytes and its settings;
* train + evaluate: the features' bytes, the item catalog's, the model's settings, k;
* score: the validated interactions' bytes, the catalog's, the model version and the
  score settings (flows/night.py adds which events count as positive).

:func:`tasks.storage.cache.key_of` adds the code version to these parts.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.storage.cache import file_digest, tree_digest

if TYPE_CHECKING:
    from tasks.config import FeatureConfig, IngestConfig, TrainConfig, ValidateConfig
    from tasks.ingest import IngestResult


def ingest_parts(config: IngestConfig, run_date: date, as_of: bool, workspace: Path) -> dict:
    parts: dict[str, Any] = {
        "stage": "ingest",
        "source": config.source,
        "run_date": run_date.isoformat(),
        "as_of": as_of,
    }
    if config.source == "demo":
        parts["demo"] = config.demo.model_dump(mode="json")
    elif config.source.startswith("movielens-"):
        from tasks.sources.movielens_archive import RELEASES

        ml = config.movielens
        parts["movielens"] = ml.model_dump(mode="json")
        if ml.path is not None:
            parts["data"] = tree_digest(ml.path)
        else:
            release = RELEASES[config.source]
            expected = ml.sha256 or release.zip_sha256
            cache = Path(ml.cache_dir or workspace / "cache" / "movielens").expanduser()
            archive = cache / f"{release.name}.zip"
            if ml.verify and expected:  # a verified download has exactly these bytes
                parts["data"] = f"sha256:{expected.lower()}"
            else:
                parts["data"] = file_digest(archive) if archive.is_file() else "not downloaded"
    else:
        parts["files"] = config.files.model_dump(mode="json")
        parts["data"] = tree_digest(config.files.path)
        parts["items"] = tree_digest(config.files.items_path)
    if config.social.path is not None:  # the relations between users: settings and bytes
        parts["social"] = config.social.model_dump(mode="json")
        parts["social_data"] = tree_digest(config.social.path)
    return parts


def validate_parts(
    ingest: IngestResult,
    config: ValidateConfig,
    out_dir: Path,
    gx_root: Path,
    accumulate: bool,
    now_iso: str | None,
) -> dict:
    from tasks.validate import previous_snapshot
    from tasks.validation.checks import VOLUME_HISTORY

    history_file = Path(gx_root) / VOLUME_HISTORY
    try:
        history = json.loads(history_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        history = {}
    previous = [v.get("rows_read") for k, v in sorted(history.items()) if k < out_dir.name]
    snapshot = previous_snapshot(out_dir) if accumulate else None
    inputs = {
        name: tree_digest(getattr(ingest, f"{name}_path"))
        for name in ("interactions", "items", "users")
    }
    if ingest.edges_path is not None:
        inputs["edges"] = tree_digest(ingest.edges_path)
        inputs["edges_direction"] = ingest.edges_direction
    return {
        "stage": "validate",
        "config": config.model_dump(mode="json"),
        "inputs": inputs,
        "accumulate": accumulate,
        "snapshot": tree_digest(snapshot) if snapshot else None,
        "previous_volumes": previous,
        "now": now_iso or f"day {datetime.now(UTC).date().isoformat()}",
    }


def features_parts(validated_path: str, config: FeatureConfig) -> dict:
    return {
        "stage": "features",
        "config": config.model_dump(mode="json"),
        "validated": tree_digest(validated_path),
    }


def model_parts(
    name: str, config: TrainConfig, features_dir: str, items_path: str | None, k: int
) -> dict:
    settings = config.model_dump(mode="json", exclude={"models"})
    return {
        "stage": f"train-{name}",
        "model": name,
        "settings": {k_: v for k_, v in settings.items() if not isinstance(v, dict)}
        | {"model": settings.get(name)},
        "features": tree_digest(features_dir),
        "items": tree_digest(items_path),
        "k": k,
    }


def score_parts(
    validated_path: str, items_path: str | None, model: str, config: Any, run_date: date
) -> dict:
    """Scoring reads the validated interactions, the item catalog, one registered model
    version and the score settings; its rows carry the run date."""
    return {
        "stage": "score",
        "validated": tree_digest(validated_path),
        "items": tree_digest(items_path),
        "model": model,
        "config": config.model_dump(mode="json"),
        "run_date": run_date.isoformat(),
    }
