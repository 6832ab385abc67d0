"""Networks over a wide catalog: input and output restricted to the most interacted items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import make_recommender
from models.hybrid import standardised
from models.memory import DataShape
from models.ranking import top_k
from models.width import head_items, network_width

TINY = {
    "mult_dae": {"hidden_dim": 8, "batch_size": 8, "epochs": 2},
    "mult_vae": {"hidden_dim": 8, "latent_dim": 4, "batch_size": 8, "epochs": 2},
    "recvae": {"hidden_dim": 8, "latent_dim": 4, "batch_size": 8, "epochs": 2},
    "gru4rec": {"embedding_dim": 4, "hidden_dim": 8, "max_len": 3, "batch_size": 8, "epochs": 2},
    "sasrec": {"embedding_dim": 4, "max_len": 3, "n_heads": 1, "batch_size": 8, "epochs": 2},
    "caser": {"embedding_dim": 4, "max_len": 2, "n_h": 2, "n_v": 2, "batch_size": 8, "epochs": 2},
}


def skewed(n_users: int = 20, n_items: int = 12) -> sp.csr_matrix:
    """Item i is seen by the first ``n_items - i`` users (capped): item 0 most, item 11
    least; every user also sees item 11 - (u % 3), so the tail is not empty."""
    rows, cols = [], []
    for u in range(n_users):
        for i in range(n_items):
            if u < n_items - i or i == n_items - 1 - (u % 3):
                rows.append(u)
                cols.append(i)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def test_head_items_are_the_most_interacted_ties_to_the_lower_index() -> None:
    binary = sp.csr_matrix(np.array([[1, 1, 0, 1, 0], [1, 0, 0, 1, 0], [0, 0, 1, 1, 1]]))
    # counts 2, 1, 1, 3, 1: item 3 and item 0, then the lowest index among the ties
    assert head_items(binary, 3).tolist() == [0, 1, 3]
    assert head_items(binary, 5) is None
    assert head_items(binary, 0) is None
    assert network_width(5, 3) == 3 and network_width(5, 0) == 5 and network_width(2, 3) == 2


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_restricted_autoencoder_ranks_only_its_items(name: str, tmp_path) -> None:
    matrix = skewed()
    # each user's items in index order: head items and tail items interleave in time
    sequences = [np.flatnonzero(row) for row in matrix.toarray()]
    model = make_recommender(name, **TINY[name], max_items=5).fit(matrix, sequences)
    assert model.output_items_.tolist() == [0, 1, 2, 3, 4]
    assert model.network_items == 5
    users = np.arange(matrix.shape[0])
    scores = model.score(users)
    assert np.isfinite(scores[:, :5]).all()
    assert np.isneginf(scores[:, 5:]).all()
    items, top = model.recommend(users, k=8)
    # ranked over the network's items only: exactly the lists of the widened scores
    expected = top_k(scores, 8, exclude=matrix)
    np.testing.assert_array_equal(items, expected[0])
    np.testing.assert_array_equal(top, expected[1])
    head_scores, columns = model.score_columns(users)
    assert columns.tolist() == [0, 1, 2, 3, 4] and head_scores.shape == (20, 5)
    # a user who saw items 0-4 has nothing left to rank: the row is padded
    assert set(items[items >= 0].tolist()) <= {0, 1, 2, 3, 4}
    assert (items[0] == -1).all()
    loaded = type(model).load(model.save(tmp_path / name))
    np.testing.assert_array_equal(loaded.output_items_, model.output_items_)
    np.testing.assert_allclose(loaded.score(users), scores, rtol=1e-6)


def test_a_catalog_within_max_items_is_unchanged() -> None:
    matrix = skewed()
    model = make_recommender("mult_dae", **TINY["mult_dae"], max_items=12).fit(matrix)
    assert model.output_items_ is None and model.network_items == 12
    assert model.score_columns(np.arange(3)) is None
    assert np.isfinite(model.score(np.arange(3))).all()


def test_the_memory_estimate_follows_the_network_width() -> None:
    from models.mult_dae import MultDAE

    shape = DataShape(users=50_000, items=1_000_000, interactions=10_000_000)
    narrow = MultDAE.memory_estimate(shape, max_items=20_000)
    whole = MultDAE.memory_estimate(shape, max_items=0)
    assert narrow.train_bytes < whole.train_bytes / 10


def test_the_hybrid_blend_gives_unranked_items_the_lowest_score() -> None:
    scores = np.array([[3.0, 1.0, -np.inf], [-np.inf, -np.inf, -np.inf]])
    out = standardised(scores)
    assert np.isfinite(out).all()
    assert out[0, 2] == out[0, 1] < out[0, 0]
    assert (out[1] == 0).all()
