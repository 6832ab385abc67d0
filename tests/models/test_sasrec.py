"""SASRec: what the attention may and may not see."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import SASRec
from models.sasrec import strided_windows
from models.sequential import sequence_windows

SEQUENCES = [np.array([0, 1, 2, 3]), np.array([4, 5, 6]), np.array([1, 3, 5, 7])]
MATRIX = sp.csr_matrix(
    (np.ones(11), (np.repeat([0, 1, 2], [4, 3, 4]), np.concatenate(SEQUENCES))), shape=(3, 8)
)


def fitted(**params: object) -> SASRec:
    settings = {"embedding_dim": 8, "max_len": 4, "n_heads": 2, "epochs": 2, "batch_size": 2}
    return SASRec(**{**settings, **params}).fit(MATRIX, SEQUENCES)


def test_a_position_never_sees_the_items_after_it() -> None:
    model = fitted()
    x = np.array([[1, 2, 3, 4], [1, 2, 3, 8]], dtype=np.int32)  # only the last item differs
    out = model._predict(model.network_, x)
    np.testing.assert_allclose(out[0, :3], out[1, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0, 3], out[1, 3])


def test_padding_is_never_attended_to() -> None:
    """Left padding carries no item: the outputs at real positions are the same whatever
    the padded positions' embedding is (here: the padding row of the embedding moved)."""
    model = fitted()
    x = np.array([[0, 0, 2, 3]], dtype=np.int32)
    before = model._predict(model.network_, x)[0, 2:]
    embedding = model.network_.get_layer("item_embedding")
    table = embedding.embeddings.numpy()
    table[0] += 5.0
    embedding.embeddings.assign(table)
    after = model._predict(model.network_, x)[0, 2:]
    np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-5)


def test_tied_logits_are_the_states_times_the_item_embeddings() -> None:
    model = fitted(tied=True)
    names = [layer.name for layer in model.network_.layers]
    assert "item_logits" in names
    weights = model.network_.get_layer("item_logits").weights
    assert [tuple(w.shape) for w in weights] == [(8,)]  # a bias only: no separate matrix
    untied = fitted(tied=False).network_.get_layer("item_logits").weights
    assert [tuple(w.shape) for w in untied] == [(8, 8), (8,)]


def test_strided_windows_score_every_target_once_with_context() -> None:
    x, y = strided_windows([np.arange(10), np.arange(3), np.arange(1)], length=4, stride=2)
    np.testing.assert_array_equal(
        x, [[6, 7, 8, 9], [4, 5, 6, 7], [2, 3, 4, 5], [0, 1, 2, 3], [0, 0, 1, 2]]
    )
    np.testing.assert_array_equal(
        y,
        [[-1, -1, 8, 9], [-1, -1, 6, 7], [-1, -1, 4, 5], [-1, 1, 2, 3], [-1, -1, 1, 2]],
    )


def test_a_stride_of_max_len_gives_consecutive_windows() -> None:
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 9, n) for n in (1, 2, 5, 9, 13)]
    for got, want in zip(
        strided_windows(sequences, 4, 4), sequence_windows(sequences, 4), strict=False
    ):
        np.testing.assert_array_equal(got, want)


def test_a_stride_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="stride must be >= 1"):
        fitted(stride=0)
