"""Score: top-K recommendations for every user, by the champion model, in blocks.

Users the champion knows get its recommendations (strategy ``personal``, or
``fallback`` when the champion is not personalised, e.g. popularity). Users it
does not know (new since it was trained) get the most popular items of the
current data that they have not seen (``cold_start``). Seen items are excluded
for everyone; items unknown to the champion cannot be recommended.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import BaseRecommender
from models.ranking import top_k
from models.vocab import IdVocabulary

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


def _rows(
    user_ids: np.ndarray, items: np.ndarray, scores: np.ndarray, item_vocab: IdVocabulary
) -> pd.DataFrame:
    valid = items >= 0
    r, c = np.nonzero(valid)
    return pd.DataFrame(
        {
            "user_id": user_ids[r],
            "rank": (c + 1).astype(np.int64),
            "item_id": item_vocab.raw(items[valid]).astype(str),
            "score": scores[valid].astype(np.float64),
        }
    )


def score_users(
    model: BaseRecommender,
    users: IdVocabulary,
    items: IdVocabulary,
    interactions: pd.DataFrame,
    k: int,
    batch_users: int = 1024,
) -> pd.DataFrame:
    """Recommendations for every user in ``interactions`` (raw ids), K rows each where possible.

    Returns columns user_id, rank, item_id, score, strategy.
    """
    all_users = IdVocabulary(interactions["user_id"])
    i_model = items.index(interactions["item_id"])
    known_item = i_model >= 0
    # Current history of every user, in the champion's item space.
    u_all = all_users.index(interactions["user_id"])
    history = sp.csr_matrix(
        (
            np.ones(int(known_item.sum()), dtype=np.float32),
            (u_all[known_item], i_model[known_item]),
        ),
        shape=(len(all_users), len(items)),
    )
    history.data[:] = 1.0
    # The same users in the champion's user space (-1 = unknown to it).
    in_model = users.index(all_users.ids)
    popularity = np.asarray((history > 0).sum(axis=0), dtype=np.float32).ravel()

    frames = []
    strategy_known = "personal" if model.personalized else "fallback"
    known_rows = np.flatnonzero(in_model >= 0)
    model_history = _reindex_rows(history, known_rows, in_model[known_rows], len(users))
    for start in range(0, len(all_users), batch_users):
        block = np.arange(start, min(start + batch_users, len(all_users)))
        known = block[in_model[block] >= 0]
        unknown = block[in_model[block] < 0]
        if known.size:
            rec, sc = model.recommend(in_model[known], k, exclude_seen=True, history=model_history)
            part = _rows(all_users.raw(known), rec, sc, items)
            part["strategy"] = strategy_known
            frames.append(part)
        if unknown.size:
            scores = np.broadcast_to(popularity, (unknown.size, popularity.size))
            rec, sc = top_k(scores, k, exclude=history[unknown])
            part = _rows(all_users.raw(unknown), rec, sc, items)
            part["strategy"] = "cold_start"
            frames.append(part)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["user_id", "rank", "item_id", "score", "strategy"])
    )


def _reindex_rows(
    history: sp.csr_matrix, src_rows: np.ndarray, dst_rows: np.ndarray, n_rows: int
) -> sp.csr_matrix:
    """A matrix with ``n_rows`` rows where row dst_rows[i] = history row src_rows[i]."""
    selection = sp.csr_matrix(
        (np.ones(src_rows.size, dtype=np.float32), (dst_rows, src_rows)),
        shape=(n_rows, history.shape[0]),
    )
    out = (selection @ history).tocsr()
    out.data[:] = 1.0
    return out


def recommendations_table(
    scored: pd.DataFrame, run_id: str, run_date: date, model_name: str, model_version: str
) -> pd.DataFrame:
    """The published table's columns and types (see the README's table contract)."""
    n = len(scored)
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
            "reason": pd.array([None] * n, dtype="str"),
        }
    )
    return table[TABLE_COLUMNS]


@task(name="score", cache_policy=NO_CACHE)
def score_task(
    validated_path: str,
    registered_name: str,
    workspace_root: str,
    k: int,
    batch_users: int,
    run_id: str,
    run_date: date,
    out_dir: str,
) -> dict:
    from tasks import tracking
    from tasks.workspace import Workspace

    client = tracking.client_for(Workspace.at(workspace_root))
    champion, version = tracking.load_champion(client, registered_name)
    interactions = pd.read_parquet(validated_path, columns=["user_id", "item_id"])
    scored = score_users(
        champion.model, champion.users, champion.items, interactions, k, batch_users
    )
    table = recommendations_table(
        scored, run_id, run_date, champion.model.name, version
    )
    path = f"{out_dir}/recommendations.parquet"
    table.to_parquet(path, index=False)
    counts = table.drop_duplicates("user_id")["strategy"].value_counts().to_dict()
    return {
        "path": path,
        "rows": len(table),
        "users": int(table["user_id"].nunique()),
        "model": champion.model.name,
        "version": version,
        "users_by_strategy": {str(k_): int(v) for k_, v in counts.items()},
    }
