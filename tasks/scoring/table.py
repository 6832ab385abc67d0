"""The recommendations table (the product's output, its contract in docs/reference/tables.md),
written shard by shard: a shard's users scored block by block and streamed to Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models import BaseRecommender
from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import Catalog, build_catalog
from tasks.scoring.inputs import prepare_inputs
from tasks.scoring.new_items import STRATEGY, NewItems, with_new_items
from tasks.scoring.ranking import SCORED_COLUMNS, score_blocks, scoring_threads
from tasks.scoring.social import SocialScores, with_users

TABLE_COLUMNS = [
    "run_id",
    "run_date",
    "user_id",
    "rank",
    "item_id",
    "score",
    "model_name",
    "model_version",
    "strategy",
    "reason",
]


def recommendations_table(
    scored: pd.DataFrame, run_id: str, run_date: date, model_name: str, model_version: str
) -> pd.DataFrame:
    """The published table's columns and types (docs/reference/tables.md)."""
    n = len(scored)
    reason = scored["reason"] if "reason" in scored else pd.Series([None] * n)
    table = pd.DataFrame(
        {
            "run_id": pd.array([run_id] * n, dtype="str"),
            "run_date": pd.Series([run_date] * n, dtype="date32[pyarrow]"),
            "user_id": scored["user_id"].astype("str").to_numpy(),
            "rank": scored["rank"].astype("int64").to_numpy(),
            "item_id": scored["item_id"].astype("str").to_numpy(),
            "score": scored["score"].astype("float64").to_numpy(),
            "model_name": pd.array([model_name] * n, dtype="str"),
            "model_version": pd.array([model_version] * n, dtype="str"),
            "strategy": scored["strategy"].astype("str").to_numpy(),
            "reason": pd.array(reason.to_numpy(), dtype="str"),
        }
    )
    return table[TABLE_COLUMNS]


def table_blocks(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    catalog: Catalog,
    interactions: pd.DataFrame,
    config: ScoreConfig,
    run: dict,
    newest: pd.Timestamp | None = None,
    popularity: np.ndarray | None = None,
    similarity: sp.csr_matrix | None = None,
    positive: tuple[str, float] | None = None,
    social: SocialScores | None = None,
    extra_users: np.ndarray | None = None,
    new_items: NewItems | None = None,
) -> Iterator[pd.DataFrame]:
    """The published table's rows of the users of ``interactions``, one frame per block of
    users. ``run``: run_id, run_date, model_version. ``positive``: as for
    :func:`prepare_inputs` (reasons name positive events only). ``social``: the friends'
    items of the graph's users without usable history (strategy ``social``);
    ``extra_users``: users scored beside those of ``interactions``, without history (users
    who appear only in the graph). ``new_items``: the catalogue's items nobody has
    interacted with and the content-aware model that ranks them; each list's last rows go
    to them (tasks/scoring/new_items.py). The nightly's shards, the refresh and the served
    model (tasks/scoring/serving.py) all rank through here."""
    inputs = prepare_inputs(
        interactions,
        users,
        items,
        config.active_days,
        config.popular_days,
        with_sequences="sequences" in getattr(model, "fit_inputs", ()),
        newest=newest,
        popularity=popularity,
        positive=positive,
    )
    if social is not None:
        inputs = replace(inputs, social=social)
    if extra_users is not None and len(extra_users):
        inputs = with_users(inputs, extra_users)
    histories = None if new_items is None else new_items.histories(interactions)
    for block in score_blocks(
        model,
        inputs,
        catalog,
        config.k,
        config.batch_users,
        config.min_history,
        config.max_per_genre,
        similarity,
        config.popular_days,
        scoring_threads(config),
    ):
        table = recommendations_table(
            block, run["run_id"], run["run_date"], model.name, run["model_version"]
        )
        if new_items is not None and histories is not None:
            users, history, seen = histories
            table = with_new_items(table, new_items, users, history, config.k, seen)
        yield table


def write_scores(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    catalog: Catalog,
    interactions: pd.DataFrame,
    config: ScoreConfig,
    path: Path,
    run: dict,
    newest: pd.Timestamp | None = None,
    popularity: np.ndarray | None = None,
    similarity: sp.csr_matrix | None = None,
    positive: tuple[str, float] | None = None,
    social: SocialScores | None = None,
    extra_users: np.ndarray | None = None,
    new_items: NewItems | None = None,
) -> dict:
    """:func:`table_blocks` streamed to the Parquet file ``path``; the rows, the users per
    strategy (of their first row) and the users given new items."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, writer, new_item_users = 0, None, 0
    strategies: dict[str, int] = {}
    try:
        for frame in table_blocks(
            model,
            users,
            items,
            catalog,
            interactions,
            config,
            run,
            newest,
            popularity,
            similarity,
            positive,
            social,
            extra_users,
            new_items,
        ):
            batch = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, batch.schema)
            writer.write_table(batch)
            rows += len(frame)
            firsts = frame.drop_duplicates("user_id")
            for strategy, n in firsts["strategy"].value_counts().items():
                strategies[str(strategy)] = strategies.get(str(strategy), 0) + int(n)
            new_item_users += int(frame.loc[frame["strategy"] == STRATEGY, "user_id"].nunique())
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        empty_table(model.name, run).to_parquet(path, index=False)
    return {"rows": rows, "users_by_strategy": strategies, "new_item_users": new_item_users}


def empty_table(model_name: str, run: dict) -> pd.DataFrame:
    """The table's columns and types, without rows."""
    return recommendations_table(
        pd.DataFrame(columns=SCORED_COLUMNS),
        run["run_id"],
        run["run_date"],
        model_name,
        run["model_version"],
    )


def scoring_catalog(items: IdVocabulary, items_path: str | None, config: ScoreConfig) -> Catalog:
    from tasks.data.catalog import read_deny_list

    return build_catalog(
        items,
        pd.read_parquet(items_path) if items_path else None,
        read_deny_list(config.deny_list_path, config.deny_items),
        config.respect_available,
    )
