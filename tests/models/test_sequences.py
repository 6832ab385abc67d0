"""Sequence inputs: building, checking, windows, and the order fallback for scoring."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import make_recommender
from models.gru4rec import GRU4Rec
from models.inputs import check_sequences, sequences_from_events, sequences_to_csr
from models.sequential import left_padded, next_item_examples, sequence_windows


def test_sequences_from_events_orders_by_time_per_user() -> None:
    users = np.array([1, 0, 1, 1, 0])
    items = np.array([5, 2, 3, 4, 1])
    times = np.array([30, 20, 10, 20, 10])
    seqs = sequences_from_events(users, items, times, n_users=3)
    assert [s.tolist() for s in seqs] == [[1, 2], [3, 4, 5], []]


def test_check_sequences_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="2 entries, expected one per user"):
        check_sequences([[0], [1]], n_users=3, n_items=4, who="m")
    with pytest.raises(ValueError, match=r"item indices 0..9, expected 0..3"):
        check_sequences([[0, 9]], n_users=1, n_items=4, who="m")


def test_sequences_to_csr_is_the_item_set() -> None:
    matrix = sequences_to_csr([np.array([2, 0, 2]), np.array([], dtype=int)], n_items=3)
    assert matrix.toarray().tolist() == [[1, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize("name", ["gru4rec", "caser"])
def test_sequence_models_need_sequences(name: str) -> None:
    matrix = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match=r"needs sequences=.*sequences_from_events"):
        make_recommender(name).fit(matrix)


def test_left_padded_keeps_the_last_items_shifted_by_one() -> None:
    out = left_padded([np.array([4, 5, 6]), np.array([7]), np.array([], dtype=int)], 2)
    assert out.tolist() == [[6, 7], [0, 8], [0, 0]]


def test_sequence_windows_make_every_later_item_a_target_once() -> None:
    x, y = sequence_windows([np.array([10, 11, 12, 13, 14])], 2)
    # windows end at the last item: inputs (items + 1) predict the next item at each step
    assert x.tolist() == [[13, 14], [11, 12]]
    assert y.tolist() == [[13, 14], [11, 12]]
    x, y = sequence_windows([np.array([10, 11, 12])], 4)
    assert x.tolist() == [[0, 0, 11, 12]] and y.tolist() == [[-1, -1, 11, 12]]


def test_next_item_examples_pair_each_prefix_with_the_next_item() -> None:
    users, x, y = next_item_examples([np.array([3]), np.array([7, 8, 9])], 2)
    assert users.tolist() == [1, 1]
    assert x.tolist() == [[0, 8], [8, 9]]
    assert y.tolist() == [8, 9]


def test_unordered_history_keeps_training_order_then_appends_new_items() -> None:
    model = GRU4Rec()
    model.sequences_ = [np.array([5, 1, 3]), np.array([2])]
    history = sp.csr_matrix(
        np.array([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]], dtype=float)
    )
    ordered = model.ordered_history(np.array([0, 1, 2]), history)
    # user 0: 5 left the history; 1, 3 keep their order; 4 is new and comes last
    # user 1: 2 left, 0 is new; user 2 is unknown to the training sequences: index order
    assert [s.tolist() for s in ordered] == [[1, 3, 4], [0], [2, 5]]
