"""Validate the relations between users: the edges suite (``expectations/edges.py``) run
on a batch of edges, the rows quarantined with their reasons, the bad share checked.

Rows read = kept + quarantined, by reason; edges to users without interactions are kept
and counted (``flagged``), with the number of such users.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from expectations.edges import (
    REQUIRED_COLUMNS,
    SUITE_NAME,
    WITHOUT_INTERACTIONS,
    EdgeBatchError,
    EdgeLimits,
    arrow_edges,
    bad_share,
    build_edges_suite,
    check_bad_share,
    edge_checks,
    suite_frame,
)
from expectations.outcome import TableResult, check_counts, split_flagged
from expectations.runner import SuiteRunner
from tasks.config import ValidateConfig
from tasks.errors import DataValidationError
from tasks.storage.shared_files import locked


@dataclass(frozen=True)
class EdgesResult:
    """The edges' split: ``table`` (accepted / quarantined as pandas frames, the figures)
    and the users the kept edges mention that have no interactions."""

    table: TableResult
    users_without_interactions: int
    bad_rows: int

    def summary(self) -> dict:
        t = self.table
        return {
            "rows_read": t.rows_read,
            "rows_accepted": t.rows_accepted,
            "rows_quarantined": t.rows_quarantined,
            "duplicates_dropped": 0,
            "quarantined_by_reason": dict(t.reasons),
            "bad_rows": self.bad_rows,
            "flagged": dict(t.flagged),
            "users_without_interactions": self.users_without_interactions,
        }

    @property
    def accounting(self) -> str:
        t = self.table
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(t.reasons.items(), key=lambda kv: -kv[1]))
        kept = t.flagged.get(WITHOUT_INTERACTIONS, 0)
        return (
            f"edges: {t.rows_read} rows read = {t.rows_accepted} kept + {t.rows_quarantined} "
            f"quarantined ({reasons or 'none'}); kept, counted: {kept} {WITHOUT_INTERACTIONS} "
            f"({self.users_without_interactions} users)"
        )


def validate_edges(
    edges: pd.DataFrame,
    *,
    direction: str,
    config: ValidateConfig,
    known_users: pd.Series | None,
    gx_root: Path,
    run_name: str | None = None,
) -> EdgesResult:
    """Run the edges suite on ``edges`` (not mutated); DataValidationError when the
    columns are missing or too many edges are bad."""
    missing = [c for c in (*REQUIRED_COLUMNS, "weight") if c not in edges.columns]
    if missing:
        raise DataValidationError(
            f"edges: required column(s) {missing} missing; found {list(edges.columns)}; "
            "the table needs user_id, friend_id and weight; map them at ingest "
            "(--social-user-col, --social-friend-col, --social-weight-col)"
        )
    limits = EdgeLimits(config.max_id_length, config.max_edge_quarantine_share)
    checks = edge_checks(edges, direction, limits, known_users)
    runner = SuiteRunner(Path(gx_root), run_name, lock=locked)
    results = runner.run(build_edges_suite(checks), suite_frame(edges, checks), "SUMMARY")
    runner.finish()
    counts = {name: int(mask.sum()) for name, mask in checks.masks.items()}
    counts[WITHOUT_INTERACTIONS] = int(checks.without_interactions.sum())
    check_counts(SUITE_NAME, results, counts)
    table = arrow_edges(edges)
    nothing = np.zeros(len(edges), dtype=bool)  # every repeat is quarantined, none dropped
    split = split_flagged(SUITE_NAME, table, results, checks.masks, nothing)
    assert split.accepted is not None and split.quarantined is not None
    split = replace(
        split,
        accepted=split.accepted.to_pandas(),
        quarantined=split.quarantined.to_pandas(),
        flagged={WITHOUT_INTERACTIONS: counts[WITHOUT_INTERACTIONS]},
    )
    try:
        check_bad_share(split.reasons, split.rows_read, limits)
    except EdgeBatchError as exc:
        raise DataValidationError(str(exc)) from exc
    bad, _ = bad_share(split.reasons, split.rows_read)
    return EdgesResult(split, checks.users_without_interactions, bad)
