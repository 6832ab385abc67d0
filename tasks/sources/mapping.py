"""A data file's columns mapped onto the interactions contract, with provenance.

``FilesConfig`` names the file's columns (``user_col``, ``item_col``, ``timestamp_col``,
``value_col``, ``event_type_col``); columns not mapped are dropped and listed in the
stats. A mapped column that is missing or holds nested values raises ``DataError``.
Problems of single rows are written into the row's ``ingest_issue`` column (see
``tasks/sources/columns.py`` for the policies), and the original text of such a row's
mapped fields into ``source_text``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.columns import (
    ISSUE,
    new_issues,
    normalize_ids,
    parse_timestamps,
    parse_values,
    unify_ids,
)
from tasks.sources.file_listing import delimiter_for

SOURCE_FILE = "source_file"
# Provenance of each row: its record number in its file (1 = the first row after the
# header; for Parquet the row's position in the file) and, for a row with a problem found
# at ingest, the original text of its mapped fields as a JSON object (null otherwise).
# Quarantined rows keep both; accepted rows drop them.
SOURCE_ROW = "source_row"
SOURCE_TEXT = "source_text"
PROVENANCE = (SOURCE_ROW, SOURCE_TEXT)
_DELIMITERS = (",", ";", "\t", "|")


def to_contract(
    raw: pd.DataFrame,
    config: FilesConfig,
    name: str,
    decided: dict | None = None,
    stamp: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Map ``raw``'s columns onto the interactions contract (plus ``ingest_issue``).

    ``decided``: the whole file's decisions (:func:`file_decisions`) when ``raw`` is one
    batch of it; None decides from ``raw``. The stats' ``decisions`` are those applied.
    ``stamp``: the time every event gets when the data has no timestamp column
    (``config.timestamp_col`` None): the start of the ingest date.
    """
    decided = decided or {}
    mapping = column_mapping(raw, config)
    _check_columns(raw, mapping, config, name)
    _check_flat(raw, mapping, name)
    issues = new_issues(raw.index)
    raw_users, user_unified = unify_ids(raw[mapping["user_id"]])
    raw_items, item_unified = unify_ids(raw[mapping["item_id"]])
    users, user_stats = normalize_ids(raw_users, "user_id", issues, decided.get("user_id"))
    items, item_stats = normalize_ids(raw_items, "item_id", issues, decided.get("item_id"))
    if "timestamp" in mapping:
        timestamps, ts_stats = parse_timestamps(
            raw[mapping["timestamp"]],
            config.timestamp_unit,
            "timestamp",
            issues,
            decided.get("timestamp"),
        )
    else:
        if stamp is None:
            raise ValueError("data without a timestamp column needs the ingest date's stamp")
        when = pd.Timestamp(stamp)
        when = when.tz_convert("UTC") if when.tzinfo else when.tz_localize("UTC")
        timestamps = pd.Series(when, index=raw.index, dtype="datetime64[ns, UTC]")
        ts_stats = {"timestamp_unit": "none (stamped with the ingest date)"}
    frame = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": timestamps})
    if "value" in mapping:
        frame["value"] = parse_values(raw[mapping["value"]], "value", issues)
    if "event_type" in mapping:
        frame["event_type"] = raw[mapping["event_type"]].astype("str").str.strip()
    frame[ISSUE] = issues.astype("str")
    frame[SOURCE_TEXT] = source_text(raw, list(mapping.values()), issues.notna())
    stats = {
        "rows": len(frame),
        **ts_stats,
        "ids_whitespace_stripped": user_stats["stripped"] + item_stats["stripped"],
        "ids_float_suffix_removed": (
            user_stats["float_suffix_removed"] + item_stats["float_suffix_removed"]
        ),
        "ids_unicode_normalized": user_unified + item_unified,
        "columns_ignored": [c for c in raw.columns if c not in mapping.values()],
        "votes": {"user_id": user_stats["float_vote"], "item_id": item_stats["float_vote"]},
        "decisions": {
            "user_id": user_stats["float_suffix"],
            "item_id": item_stats["float_suffix"],
            "timestamp": ts_stats["timestamp_unit"] if "timestamp_forms" in ts_stats else None,
        },
    }
    return frame.reset_index(drop=True), stats


def column_mapping(raw: pd.DataFrame, config: FilesConfig) -> dict[str, str]:
    """Contract column -> the file's column holding it (value / event_type when present)."""
    mapping = {"user_id": config.user_col, "item_id": config.item_col}
    if config.timestamp_col is not None:
        mapping["timestamp"] = config.timestamp_col
    for target, chosen in (("value", config.value_col), ("event_type", config.event_type_col)):
        if chosen is not None or target in raw.columns:
            mapping[target] = chosen or target
    return mapping


def source_text(raw: pd.DataFrame, columns: list[str], mask: np.ndarray | pd.Series) -> pd.Series:
    """The original text of ``columns`` as a JSON object where ``mask`` holds, else null:
    what the file said before any parsing, for the rows quarantined because of it."""
    out = pd.Series(pd.NA, index=raw.index, dtype="str")
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(rows):
        return out
    columns = list(dict.fromkeys(columns))
    picked = raw.iloc[rows][columns].astype(object)
    out.iloc[rows] = [
        json.dumps(
            {c: None if pd.isna(v) else str(v) for c, v in zip(columns, values, strict=False)},
            ensure_ascii=False,
        )
        for values in picked.itertuples(index=False, name=None)
    ]
    return out


def _check_columns(raw: pd.DataFrame, mapping: dict, config: FilesConfig, name: str) -> None:
    options = {"user_id": "--user-col", "item_id": "--item-col", "timestamp": "--timestamp-col"}
    options |= {"value": "--value-col", "event_type": "--event-type-col"}
    missing = [(t, c) for t, c in mapping.items() if c not in raw.columns]
    if not missing:
        return
    target, column = missing[0]
    found = [str(c) for c in raw.columns]
    hint = f"map it with {options[target]}"
    if target == "timestamp":
        hint += " (or --timestamp-col none when the data has no time)"
    if len(found) == 1:
        used = delimiter_for(name, config)
        other = [d for d in _DELIMITERS if d != used and d in found[0]]
        if other:
            hint = (
                f"the header looks {other[0]!r}-delimited, not {used!r}: "
                f"set --delimiter {other[0]!r}"
            )
    raise DataError(f"{name}: column {column!r} ({target}) missing; found {found}; {hint}")


def _check_flat(raw: pd.DataFrame, mapping: dict, name: str) -> None:
    """Refuse nested (list / struct / map) values in a mapped column: no id or time is in them."""
    for target, column in mapping.items():
        values = raw[column]
        if not pd.api.types.is_object_dtype(values.dtype):
            continue
        nested = values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
        if nested.any():
            first = values[nested].iloc[0]
            kind = "a struct/map" if isinstance(first, dict) else "a list"
            raise DataError(
                f"{name}: column {column!r} ({target}) holds nested values ({kind}, e.g. "
                f"{_short(first)}); expected one plain value per row; flatten it upstream "
                "(one row per element, or pick the field) and re-export"
            )


def _short(value: object) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."
