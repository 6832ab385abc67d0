"""The output suite: the recommendations table is checked before it is published.

The table is checked together with derived columns computed from the inputs
(``expectations.recommendations.with_checks``), so each rule of the table's
contract is one expectation in the Data Docs:

* K rows per user, ranks 1..K unique per user, items unique per user;
* scores present, finite and descending with rank (among a user's rows of one
  strategy: a list's ``new_item`` rows come from another model, on its own scale);
* no item the user already interacted with, no denied or unavailable item;
* every user id in today's interactions (or in the graph of relations between users),
  every item id in the catalogue;
* strategy one of personal / cold_start / social / fallback / new_item;
* a ``new_item`` row's item is one of the night's new items: in the catalogue, with
  content, and nobody's interaction yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SUITE_NAME = "recommendations"
STRATEGIES = ["personal", "cold_start", "social", "fallback", "new_item"]


def with_checks(
    table: pd.DataFrame,
    interactions: pd.DataFrame,
    known_items: set[str] | np.ndarray,
    blocked_items: set[str] | np.ndarray,
    graph_users: set[str] | np.ndarray | None = None,
    new_items: set[str] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The columns the suite reads: the table's plus derived booleans and counts.
    ``graph_users``: users known from the relations between users only (scored by their
    friends' items), who are known users too. ``new_items``: the catalogue's items nobody
    has interacted with that the night ranked (tasks/scoring/new_items.py); they are
    catalogue items too, and the only items ``new_item`` rows may hold."""
    frame = table[["user_id", "rank", "item_id", "score", "strategy"]].copy()
    frame["score"] = frame["score"].astype("float64")
    ordered = frame.sort_values(["user_id", "rank"], kind="stable")
    nxt = ordered.groupby(["user_id", "strategy"], sort=False)["score"].shift(-1)
    frame["score_drop"] = (ordered["score"] - nxt).reindex(frame.index).fillna(0.0)
    frame["user_rows"] = frame.groupby("user_id")["rank"].transform("size")
    seen = pd.MultiIndex.from_frame(interactions[["user_id", "item_id"]].astype(str))
    frame["seen"] = pd.MultiIndex.from_frame(frame[["user_id", "item_id"]].astype(str)).isin(seen)
    frame["denied"] = frame["item_id"].isin(list(blocked_items))
    frame["user_known"] = frame["user_id"].isin(interactions["user_id"].unique())
    if graph_users is not None and len(graph_users):
        frame["user_known"] |= frame["user_id"].isin(list(graph_users))
    new = list(new_items) if new_items is not None else []
    frame["item_known"] = frame["item_id"].isin(list(known_items)) | frame["item_id"].isin(new)
    frame["new_item_ok"] = (frame["strategy"] != "new_item") | frame["item_id"].isin(new)
    return frame


def build_recommendations_suite(k: int) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def rule(text: str) -> dict:
        return {"level": "batch", "rule": text}

    expectations = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[
                "user_id",
                "rank",
                "item_id",
                "score",
                "strategy",
                "score_drop",
                "user_rows",
                "seen",
                "denied",
                "user_known",
                "item_known",
                "new_item_ok",
                "__row__",
            ],
            exact_match=False,
            meta=rule("the table has the contract's columns"),
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="user_rows", min_value=k, max_value=k, meta=rule(f"{k} rows per user")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="rank", min_value=1, max_value=k, meta=rule(f"rank in 1..{k}")
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["user_id", "rank"], meta=rule("ranks unique per user")
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["user_id", "item_id"], meta=rule("items unique per user")
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="score", meta=rule("score present")),
        gxe.ExpectColumnValuesToBeBetween(
            column="score", min_value=-3.0e38, max_value=3.0e38, meta=rule("score finite")
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="score_drop",
            min_value=0,
            meta=rule("scores descending with rank (within a strategy)"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="seen", value_set=[False], meta=rule("no item the user already interacted with")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="denied", value_set=[False], meta=rule("no denied or unavailable item")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="user_known",
            value_set=[True],
            meta=rule("every user id is in today's interactions"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="item_known", value_set=[True], meta=rule("every item id is in the catalogue")
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="strategy",
            value_set=STRATEGIES,
            meta=rule("strategy is personal, cold_start, social, fallback or new_item"),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="new_item_ok",
            value_set=[True],
            meta=rule("a new_item row holds a catalogue item nobody has interacted with"),
        ),
    ]
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)
