"""The Great Expectations suite for the relations between users (edges), as Python code.

An edge ``user_id -> friend_id`` (``weight``) is quarantined, with its reasons, when:

* ``user_id`` or ``friend_id`` is missing (null or blank) or longer than
  ``max_id_length``;
* ingest could not read one of its values (``ingest_issue``);
* it is a self-loop (a user related to themselves);
* its weight is missing, not finite or negative;
* it repeats an earlier good edge: the same pair (``duplicate edge``), or, when the
  relations are mutual, the same pair the other way round (``reverse duplicate of a
  mutual edge``: a friendship stored both ways holds once).

An edge to or from a user the interactions never mention is kept and counted (flag
``edge to a user without interactions``): a friend can be a cold user. So rows read =
kept + quarantined, by reason. The rows quarantined as bad (every reason but the two
duplicates, which are harmless) may be at most ``max_quarantine_share`` of the batch:
more means the file or its column mapping is wrong, and the batch is rejected
(``EdgeBatchError``).

As for the interactions (``expectations/interactions.py``), the row checks are computed
vectorised and GX validates what they found: one column per check with the failing rows'
values as text (null elsewhere), each an ``expect_column_values_to_be_null``, so the Data
Docs show each check's count and sample values. ``great_expectations`` is imported inside
the builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from expectations.common import flag, row
from expectations.errors import ExpectationsError
from expectations.interactions import INGEST_REASON, ISSUE_COLUMN

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

SUITE_NAME = "edges"
REQUIRED_COLUMNS = ("user_id", "friend_id")
DUPLICATE = "duplicate edge"
REVERSE_DUPLICATE = "reverse duplicate of a mutual edge"
HARMLESS = (DUPLICATE, REVERSE_DUPLICATE)  # quarantined, not counted as bad
WITHOUT_INTERACTIONS = "edge to a user without interactions"


class EdgeBatchError(ExpectationsError):
    """Too many edges were bad: the relations file or its column mapping is wrong."""


@dataclass(frozen=True)
class EdgeLimits:
    max_id_length: int  # validate.max_id_length
    max_quarantine_share: float  # validate.max_edge_quarantine_share


@dataclass(frozen=True)
class EdgeChecks:
    """Each check's rows (check name -> mask, in the suite's order), the quarantine
    checks' reasons and the kept-but-counted flag."""

    masks: dict[str, np.ndarray]
    reasons: dict[str, str]  # quarantine check -> reason
    without_interactions: np.ndarray  # kept rows whose user or friend has no interactions
    users_without_interactions: int  # distinct such users among the kept edges


def edge_checks(
    edges: pd.DataFrame, direction: str, limits: EdgeLimits, known_users: pd.Series | None
) -> EdgeChecks:
    """The checks of ``edges`` (not mutated); ``known_users``: the users with
    interactions (None: no such check)."""
    n = len(edges)
    users = edges["user_id"].astype("str")
    friends = edges["friend_id"].astype("str")
    masks: dict[str, np.ndarray] = {}
    reasons: dict[str, str] = {}

    def add(check: str, mask: np.ndarray, reason: str | None = None) -> None:
        masks[check] = np.asarray(mask, dtype=bool)
        reasons[check] = reason or check

    for column, ids in (("user_id", users), ("friend_id", friends)):
        blank = ids.isna() | ids.str.strip().eq("").fillna(True)
        add(f"{column} is null or blank", blank.to_numpy())
        long = ids.str.len().fillna(0).to_numpy() > limits.max_id_length
        add(f"{column} too long", long, f"{column} longer than {limits.max_id_length} characters")
    if ISSUE_COLUMN in edges.columns:
        add("ingest issue", edges[ISSUE_COLUMN].notna().to_numpy(), INGEST_REASON)
    add("self-loop", (users == friends).fillna(False).to_numpy(), "self-loop (user = friend)")
    weight = pd.to_numeric(edges["weight"], errors="coerce").to_numpy(dtype="float64")
    bad_weight = ~np.isfinite(weight) | (weight < 0)
    add("weight out of range", bad_weight, "weight missing, not finite or negative")
    clean = ~np.logical_or.reduce([*masks.values(), np.zeros(n, dtype=bool)])
    exact = pd.DataFrame({"u": users, "f": friends})[clean]
    repeated = np.zeros(n, dtype=bool)
    repeated[np.flatnonzero(clean)[exact.duplicated(keep="first").to_numpy()]] = True
    add(DUPLICATE, repeated)
    reverse = np.zeros(n, dtype=bool)
    if direction == "mutual":
        rest = clean & ~repeated
        u, f = users[rest].to_numpy(dtype=object), friends[rest].to_numpy(dtype=object)
        low, high = np.where(u < f, u, f), np.where(u < f, f, u)
        pair = pd.DataFrame({"a": low, "b": high}).duplicated(keep="first").to_numpy()
        reverse[np.flatnonzero(rest)[pair]] = True
    add(REVERSE_DUPLICATE, reverse)
    kept = ~np.logical_or.reduce(list(masks.values()))
    without = np.zeros(n, dtype=bool)
    n_without = 0
    if known_users is not None:
        known = pd.Index(known_users.astype("str").unique())
        user_known, friend_known = users.isin(known).to_numpy(), friends.isin(known).to_numpy()
        without = kept & ~(user_known & friend_known)
        cold = pd.concat([users[kept & ~user_known], friends[kept & ~friend_known]])
        n_without = int(cold.nunique())
    return EdgeChecks(masks, reasons, without, n_without)


def suite_frame(edges: pd.DataFrame, checks: EdgeChecks) -> pd.DataFrame:
    """The batch GX validates: one column per check, the failing rows' pair as text
    (``user_id -> friend_id``), null elsewhere."""
    pair = edges["user_id"].astype("str").fillna("<null>") + " -> "
    pair = pair + edges["friend_id"].astype("str").fillna("<null>")
    frame = {
        check: pair.where(pd.Series(mask, index=edges.index), None).astype(object)
        for check, mask in checks.masks.items()
    }
    frame[WITHOUT_INTERACTIONS] = pair.where(
        pd.Series(checks.without_interactions, index=edges.index), None
    ).astype(object)
    return pd.DataFrame(frame).reset_index(drop=True)


def build_edges_suite(checks: EdgeChecks) -> ExpectationSuite:
    """Each quarantine check as a row-level expectation, the users without interactions
    as a flag (kept, counted)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectColumnValuesToBeNull(column=check, meta=row(reason))
        for check, reason in checks.reasons.items()
    ]
    expectations.append(
        gxe.ExpectColumnValuesToBeNull(column=WITHOUT_INTERACTIONS, meta=flag(WITHOUT_INTERACTIONS))
    )
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def bad_share(reasons: dict[str, int], rows: int) -> tuple[int, float]:
    """Rows quarantined as bad (a duplicate is not bad) and their share of ``rows``."""
    bad = sum(n for reason, n in reasons.items() if not set(reason.split("; ")) <= set(HARMLESS))
    return bad, bad / rows if rows else 0.0


def check_bad_share(reasons: dict[str, int], rows: int, limits: EdgeLimits) -> None:
    """Raise EdgeBatchError when the bad rows are more than the limit allows."""
    bad, share = bad_share(reasons, rows)
    if share <= limits.max_quarantine_share:
        return
    by_reason = ", ".join(
        f"{reason!r}: {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]
    )
    raise EdgeBatchError(
        f"edges: {bad} of {rows} rows ({share:.1%}) quarantined as bad, above "
        f"validate.max_edge_quarantine_share {limits.max_quarantine_share:.1%}; reasons: "
        f"{by_reason}; the relations file or its columns look wrong: check --social-path, "
        "--social-user-col and --social-friend-col (or raise the share if this is expected); "
        "nothing was written downstream"
    )


def arrow_edges(edges: pd.DataFrame) -> pa.Table:
    """``edges`` as an Arrow table (ids as text), for the split."""
    table = pa.Table.from_pandas(edges, preserve_index=False)
    for name in REQUIRED_COLUMNS:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(pa.large_string()))
    return table
