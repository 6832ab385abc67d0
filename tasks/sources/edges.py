"""Relations between users (friends, follows, trust) read from CSV/Parquet files.

``ingest.social.path`` is a file or a folder of them (gzip allowed), read whole every
run. Its columns are mapped onto the edges contract:

| column | type | meaning |
|---|---|---|
| user_id | string | who holds the relation |
| friend_id | string | the user it points to |
| weight | float | its strength (1.0 without a weight column) |

plus ``ingest_issue`` (a sentence where a value could not be read; validation
quarantines those rows), ``source_file`` and ``source_row``. Ids follow the
interactions' policies (tasks/sources/columns.py), so one user's id is the same text in
both tables. What cannot be read at all raises ``DataError``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.config import FilesConfig, SocialConfig
from tasks.errors import DataError
from tasks.sources.columns import ISSUE, new_issues, normalize_ids, parse_values, unify_ids
from tasks.sources.file_reader import read_table
from tasks.sources.files import data_files_at
from tasks.sources.mapping import SOURCE_FILE, SOURCE_ROW

EDGE_COLUMNS = ["user_id", "friend_id", "weight"]


def read_edges(config: SocialConfig) -> tuple[pd.DataFrame, dict]:
    """Every edges file under ``config.path`` as contract columns, and what was read."""
    root, paths, skipped = data_files_at(
        config.path,
        "relations between users need ingest.social.path; expected a CSV/Parquet file or "
        "a folder of them; pass --social-path",
        "{root}: no CSV or Parquet edges files ({others} other files); expected "
        ".csv/.tsv/.parquet files (optionally .gz) of user-friend pairs; check --social-path",
    )
    reading = FilesConfig(delimiter=config.delimiter, encoding=config.encoding)
    frames, per_file = [], {}
    for path in paths:
        name = path.name if path == root else path.relative_to(root).as_posix()
        frame = edges_frame(read_table(path, reading, name), config, name)
        per_file[name] = len(frame)
        frames.append(frame)
    edges = pd.concat(frames, ignore_index=True)
    stats = {
        "rows": len(edges),
        "files": per_file,
        "files_skipped": skipped,
        "direction": config.direction,
        "weighted": config.weight_col is not None,
    }
    return edges, stats


def edges_frame(raw: pd.DataFrame, config: SocialConfig, name: str) -> pd.DataFrame:
    """One file's rows as the edges contract (``raw`` is not mutated)."""
    wanted = {"user_id": config.user_col, "friend_id": config.friend_col}
    if config.weight_col is not None:
        wanted["weight"] = config.weight_col
    options = {"user_id": "--social-user-col", "friend_id": "--social-friend-col"}
    options["weight"] = "--social-weight-col"
    for target, column in wanted.items():
        if column not in raw.columns:
            raise DataError(
                f"{name}: edges column {column!r} ({target}) missing; found "
                f"{[str(c) for c in raw.columns]}; map it with {options[target]}"
            )
    issues = new_issues(raw.index)
    frame = pd.DataFrame(index=raw.index)
    for target in ("user_id", "friend_id"):
        ids = unify_ids(raw[wanted[target]])[0]
        frame[target] = normalize_ids(ids, target, issues)[0]
    if "weight" in wanted:
        frame["weight"] = parse_values(raw[wanted["weight"]], "weight", issues)
    else:
        frame["weight"] = np.ones(len(raw), dtype="float64")
    frame[ISSUE] = issues.astype("str")
    frame[SOURCE_FILE] = pd.array([name] * len(frame), dtype="str")
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame.reset_index(drop=True)
