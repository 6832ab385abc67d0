from datetime import date

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models import make_recommender
from models.vocab import IdVocabulary
from tasks.score import TABLE_COLUMNS, recommendations_table, score_users


def test_score_users_maps_ids_excludes_seen_and_falls_back_for_new_users() -> None:
    users, items = IdVocabulary(["u1", "u2"]), IdVocabulary(["a", "b", "c", "d"])
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=float))
    model = make_recommender("popularity").fit(train)
    interactions = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "new", "new"],
            "item_id": ["a", "b", "a", "c", "a", "zzz"],  # zzz unknown to the model
        }
    )
    out = score_users(model, users, items, interactions, k=2, batch_users=1)
    got = {u: g.sort_values("rank")["item_id"].tolist() for u, g in out.groupby("user_id")}
    assert got["u1"] == ["c", "d"]
    assert got["u2"] == ["b", "d"]
    # popularity among today's events: a=3, b=1, c=1 -> new user (saw a) gets b, c
    assert got["new"] == ["b", "c"]
    strategies = out.drop_duplicates("user_id").set_index("user_id")["strategy"].to_dict()
    assert strategies == {"u1": "fallback", "u2": "fallback", "new": "cold_start"}


def test_recommendations_table_contract() -> None:
    scored = pd.DataFrame(
        {"user_id": ["u"], "rank": [1], "item_id": ["i"], "score": [0.5], "strategy": ["personal"]}
    )
    table = recommendations_table(scored, "run-1", date(2026, 1, 2), "mult_dae", "3")
    assert table.columns.tolist() == TABLE_COLUMNS
    row = table.iloc[0]
    assert row["run_date"] == date(2026, 1, 2) and row["model_version"] == "3"
    assert pd.isna(row["reason"])
