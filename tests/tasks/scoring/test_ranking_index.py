"""The night's ranking through a factor model's item index: the same rows as dense
scoring, with seen and blocked items excluded and the genre cap applied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models import ALS, load_recommender
from models.vocab import IdVocabulary
from tasks.data.catalog import build_catalog
from tasks.scoring.inputs import prepare_inputs
from tasks.scoring.ranking import rank_blocks

N_USERS, N_ITEMS = 40, 1000
TRAIN = sp.random(N_USERS, N_ITEMS, density=0.015, random_state=3, format="csr", dtype=np.float32)
TRAIN.data[:] = 1.0
USERS = IdVocabulary([f"u{n:02d}" for n in range(N_USERS)])
ITEMS = IdVocabulary([f"i{n:04d}" for n in range(N_ITEMS)])
ITEM_TABLE = pd.DataFrame({"item_id": ITEMS.ids, "genres": [f"G{n % 5}" for n in range(N_ITEMS)]})


RNG = np.random.default_rng(11)


def als(ann_min_items: int, directory) -> ALS:
    """An ALS whose factors are Gaussian (scores well separated: tiny fitted data gives
    items of identical factors, ties no index is asked to settle by item index), loaded
    from its saved directory, which builds the index where the width asks for one."""
    model = ALS(factors=8, iterations=1, num_threads=1, ann_min_items=0).fit(TRAIN)
    model.user_factors_ = USER_FACTORS
    model.item_factors_ = ITEM_FACTORS
    model.params["ann_min_items"] = ann_min_items
    loaded = load_recommender(model.save(directory / str(ann_min_items)))
    assert isinstance(loaded, ALS)
    return loaded


USER_FACTORS = RNG.normal(size=(N_USERS, 8)).astype(np.float32)
ITEM_FACTORS = (RNG.normal(size=(N_ITEMS, 8)) * RNG.uniform(0.2, 3.0, (N_ITEMS, 1))).astype(
    np.float32
)


def today() -> pd.DataFrame:
    """The training events plus two for a user the model has not seen (cold start)."""
    users, items = TRAIN.nonzero()
    frame = pd.DataFrame({"user_id": USERS.ids[users], "item_id": ITEMS.ids[items]})
    new = pd.DataFrame({"user_id": ["new", "new"], "item_id": ["i0000", "i0001"]})
    frame = pd.concat([frame, new], ignore_index=True)
    return frame.assign(
        timestamp=pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC")
    )


def ranked(model: ALS, denied: set[str], cap: int | None) -> dict[str, tuple]:
    inputs = prepare_inputs(today(), USERS, ITEMS)
    catalog = build_catalog(ITEMS, ITEM_TABLE, denied)
    out = {}
    for rows, strategy, items, scores, _ in rank_blocks(
        model, inputs, catalog, k=10, batch_users=16, max_per_genre=cap
    ):
        for row, its, scs in zip(rows, items, scores, strict=True):
            out[str(inputs.users.raw(np.array([row]))[0])] = (strategy, its, scs)
    return out


@pytest.mark.parametrize("cap", [None, 2])
def test_indexed_ranking_equals_dense_ranking_with_exclusions(cap: int | None, tmp_path) -> None:
    dense_model, indexed_model = als(0, tmp_path), als(100, tmp_path)
    assert indexed_model.retrieves and not dense_model.retrieves
    best = dense_model.recommend(np.arange(N_USERS), 3)[0]
    denied = {str(ITEMS.ids[i]) for i in best[:4].ravel()}  # some users' favourites
    dense, indexed = ranked(dense_model, denied, cap), ranked(indexed_model, denied, cap)
    assert dense.keys() == indexed.keys() and "new" in indexed
    blocked = ITEMS.index(np.array(sorted(denied)))
    for user, (strategy, items, scores) in indexed.items():
        assert strategy == dense[user][0]
        np.testing.assert_array_equal(items, dense[user][1])
        np.testing.assert_allclose(scores, dense[user][2], rtol=1e-5)
        assert (items >= 0).all() and not np.isin(items, blocked).any()
        if user != "new":
            seen = TRAIN[int(USERS.index(np.array([user]))[0])].indices
            assert not np.isin(items, seen).any()
