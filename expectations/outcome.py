"""From GX results to tables: quarantine with reasons, duplicates dropped, accounting.

``split_table`` turns one table's validation results into accepted and quarantined
rows. Row-level failures are quarantined with every reason that applies (a reason from
ingest, ``ingest_issue``, is spelled out row by row); then duplicate keys among the
remaining rows are dropped, the first copy kept. The accounting always holds:
rows read = accepted + quarantined + duplicates dropped.

``split_table`` reads the flagged rows from GX's COMPLETE results (the item and user
tables); ``split_flagged`` does the same for the interactions, whose rows were flagged
vectorised before GX ran (``expectations/flags.py``), on Arrow tables, after
``check_counts`` has held GX's counts to the flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from expectations.common import ROW_COLUMN
from expectations.interactions import INGEST_REASON, ISSUE_COLUMN
from expectations.runner import flagged_rows, summary

SAMPLES = 5  # quarantined rows described in messages
# Where a row came from (its file's record number, the original text of a row that failed
# at ingest): kept with quarantined rows, not carried by accepted ones.
PROVENANCE_COLUMNS = ("source_row", "source_text")


@dataclass(frozen=True)
class TableResult:
    """One table's split; rows_read == rows_accepted + rows_quarantined + duplicates_dropped."""

    name: str
    # Arrow tables for the interactions (split_flagged), pandas frames for the catalogs;
    # None when written straight to a file (user partitions)
    accepted: pd.DataFrame | pa.Table | None
    quarantined: pd.DataFrame | pa.Table | None
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    duplicates_dropped: int
    flagged: dict[str, int]
    expectations: list[dict]
    reasons: dict[str, int] = field(default_factory=dict)  # quarantined rows per reason
    samples: tuple[str, ...] = ()  # the first few quarantined rows, described

    @property
    def accounting(self) -> str:
        flags = "".join(f"; flagged, kept: {n} {reason}" for reason, n in self.flagged.items())
        return (
            f"{self.name}: {self.rows_read} rows read = {self.rows_accepted} accepted + "
            f"{self.rows_quarantined} quarantined + {self.duplicates_dropped} duplicates "
            f"dropped{flags}"
        )


def describe_row(row: pd.Series) -> str:
    """One quarantined row in words: its contract fields and its reason."""
    fields = [c for c in ("user_id", "item_id", "timestamp", "value", "event_type") if c in row]
    values = ", ".join(
        f"{c}={row[c]!r}" if isinstance(row[c], str) else f"{c}={row[c]}" for c in fields
    )
    return f"{values} ({row['reason']})"


def table_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A catalog table for GX: nullable integers as floats, plus the row number."""
    frame = table.copy()
    for column in frame.columns:
        if pd.api.types.is_integer_dtype(frame[column].dtype):
            frame[column] = frame[column].astype("float64")  # nullable Int64 -> NaN for GX
    frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    return frame


def split_table(name: str, df: pd.DataFrame, results: list, key: list[str]) -> TableResult:
    """Quarantine flagged rows (with their reasons), then drop duplicate keys (first kept)."""
    reasons: dict[int, list[str]] = {}
    flagged: dict[str, int] = {}
    issues = df[ISSUE_COLUMN].to_numpy(dtype=object) if ISSUE_COLUMN in df.columns else None
    for r in results:
        meta = r.expectation_config.meta or {}
        if meta.get("level") == "flag" and not r.success:
            flagged[meta["reason"]] = int(r.result.get("unexpected_count") or 0)
        if meta.get("level") != "row":
            continue
        for i in flagged_rows(r):
            reason = meta["reason"]
            if reason == INGEST_REASON and issues is not None:
                reason = f"ingest: {issues[i]}"
            row_reasons = reasons.setdefault(i, [])
            if reason not in row_reasons:
                row_reasons.append(reason)
    bad = np.array(sorted(reasons), dtype=np.int64)
    quarantined = df.iloc[bad].reset_index(drop=True)
    quarantined["reason"] = pd.array(["; ".join(reasons[i]) for i in bad], dtype="str")
    good = np.ones(len(df), dtype=bool)
    good[bad] = False
    clean = df.iloc[good]
    duplicated = clean.duplicated(subset=[k for k in key if k in df.columns], keep="first")
    accepted = clean[~duplicated.to_numpy()].reset_index(drop=True)
    accepted = accepted.drop(columns=[ISSUE_COLUMN, *PROVENANCE_COLUMNS], errors="ignore")
    result = TableResult(
        name=name,
        accepted=accepted,
        quarantined=quarantined,
        rows_read=len(df),
        rows_accepted=len(accepted),
        rows_quarantined=len(quarantined),
        duplicates_dropped=int(duplicated.sum()),
        flagged=flagged,
        expectations=[summary(r) for r in results],
        reasons={str(r): int(n) for r, n in quarantined["reason"].value_counts().items()},
        samples=tuple(
            f"row {row}: {describe_row(quarantined.iloc[i])}"
            for i, row in enumerate(bad[:SAMPLES].tolist())
        ),
    )
    if (
        result.rows_read
        != result.rows_accepted + result.rows_quarantined + result.duplicates_dropped
    ):
        raise RuntimeError(f"{name}: row accounting does not add up: {result.accounting}")
    return result


def check_counts(name: str, results: list, counts: dict[str, int]) -> None:
    """Each flag column's GX unexpected count must be the rows flagged for it (``counts``,
    by column): GX validated what the vectorised checks found, nothing less or more."""
    for r in results:
        column = r.expectation_config.kwargs.get("column")
        if column in counts:
            seen = int(r.result.get("unexpected_count") or 0)
            if seen != counts[column]:
                raise RuntimeError(
                    f"{name}: GX counted {seen} unexpected rows in {column!r}, the vectorised "
                    f"check flagged {counts[column]}; the two must agree"
                )


def split_flagged(
    name: str,
    table: pa.Table,
    results: list,
    masks: dict[str, np.ndarray],
    dropped: np.ndarray,
) -> TableResult:
    """``split_table`` for a table whose row checks were flagged before GX ran (``masks``,
    by flag column): quarantine the flagged rows with every reason that applies (in the
    order of the results), then drop the rows ``dropped`` (later clean copies of a key,
    see ``expectations.flags.duplicate_masks``). Arrow in, Arrow out."""
    flags = []  # (reason, mask) of the row-level results, in order
    for r in results:
        meta = r.expectation_config.meta or {}
        if meta.get("level") == "row":
            flags.append((meta["reason"], masks[r.expectation_config.kwargs["column"]]))
    bad_mask = np.zeros(table.num_rows, dtype=bool)
    for _, mask in flags:
        bad_mask |= mask
    bad = np.flatnonzero(bad_mask)
    reason = _reasons(flags, bad, table)
    quarantined = table.take(pa.array(bad)).append_column("reason", reason)
    clean = ~bad_mask
    drop = [c for c in (ISSUE_COLUMN, *PROVENANCE_COLUMNS) if c in table.column_names]
    keep = clean & ~dropped
    accepted = (table if keep.all() else table.filter(pa.array(keep))).drop_columns(drop)
    counts = pc.value_counts(reason).to_pylist() if len(reason) else []
    head = quarantined.slice(0, SAMPLES).to_pandas()
    result = TableResult(
        name=name,
        accepted=accepted,
        quarantined=quarantined,
        rows_read=table.num_rows,
        rows_accepted=accepted.num_rows,
        rows_quarantined=quarantined.num_rows,
        duplicates_dropped=int(dropped.sum()),
        flagged={},
        expectations=[summary(r) for r in results],
        reasons={c["values"]: int(c["counts"]) for c in counts},
        samples=tuple(
            f"row {row}: {describe_row(head.iloc[i])}" for i, row in enumerate(bad[:SAMPLES])
        ),
    )
    if (
        result.rows_read
        != result.rows_accepted + result.rows_quarantined + result.duplicates_dropped
    ):
        raise RuntimeError(f"{name}: row accounting does not add up: {result.accounting}")
    return result


def _reasons(flags: list[tuple[str, np.ndarray]], bad: np.ndarray, table: pa.Table) -> pa.Array:
    """The reasons of the rows ``bad``, "; "-joined, each once, in the order of ``flags``;
    the ingest reason spelled out row by row (``ingest: <issue>``)."""
    texts = list(dict.fromkeys(reason for reason, _ in flags))
    code = np.zeros(len(bad), dtype=np.int64)
    for reason, mask in flags:
        code |= mask[bad].astype(np.int64) << texts.index(reason)
    combos, inverse = np.unique(code, return_inverse=True)
    joined = []
    for combo in combos.tolist():
        joined.append([t for j, t in enumerate(texts) if combo >> j & 1])
    issues = None
    if INGEST_REASON in texts and ISSUE_COLUMN in table.column_names:
        issues = table.column(ISSUE_COLUMN).take(pa.array(bad)).to_pylist()
    if issues is None:
        words = ["; ".join(parts) for parts in joined]
        return pa.array(words, pa.large_string()).take(pa.array(inverse))
    out = []
    for i, issue in zip(inverse.tolist(), issues, strict=False):
        parts = joined[i]
        out.append("; ".join(f"ingest: {issue}" if t == INGEST_REASON else t for t in parts))
    return pa.array(out, pa.large_string())
