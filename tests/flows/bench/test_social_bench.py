"""bench social's pure parts: the dataset, the three-way split, cold users, the verdict."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from flows.bench.social import (
    Row,
    cold_mask,
    load_social_dataset,
    report,
    split_three,
    verdict,
)
from models import declared_inputs
from tasks.errors import DataError


def test_the_dataset_joins_checkins_and_mutual_friendships(tmp_path) -> None:
    (tmp_path / "checkins.tsv").write_text(
        "user_id\tpoi_id\tcheckins\na\tx\t3\nb\ty\t1\na\ty\t1\na\tx\t2\n"
    )
    (tmp_path / "friends.tsv").write_text("user_id\tfriend_id\na\tb\nb\tc\nc\tc\n")
    data = load_social_dataset(tmp_path)
    assert data.users.tolist() == ["a", "b", "c"]  # c: only a friend, no check-ins
    assert data.items.tolist() == ["x", "y"]
    assert data.matrix.toarray().tolist() == [[1, 1], [0, 1], [0, 0]]
    # mutual, stored once each way; the self-loop dropped
    assert data.social.toarray().tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]


def test_a_folder_without_the_files_says_what_it_needs(tmp_path) -> None:
    with pytest.raises(DataError, match=r"checkins\.tsv, friends\.tsv missing"):
        load_social_dataset(tmp_path)


def test_split_three_holds_out_disjoint_shares_of_each_user() -> None:
    matrix = sp.csr_matrix(np.ones((4, 20), dtype=np.float32))
    train, validation, test = split_three(matrix, seed=3)
    assert np.diff(test.indptr).tolist() == [2] * 4  # 10% of 20
    assert np.diff(validation.indptr).tolist() == [2] * 4  # 10% of all: 2 of the 18 left
    assert np.diff(train.indptr).tolist() == [16] * 4
    assert (train + validation + test).toarray().tolist() == matrix.toarray().tolist()
    again = split_three(matrix, seed=3)
    assert (again[2] != test).nnz == 0


def test_cold_users_have_little_history_and_a_friend() -> None:
    train = sp.csr_matrix(np.array([[1] * 5 + [0], [1] * 6, [1, 0, 0, 0, 0, 0]], dtype=float))
    social = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    assert cold_mask(train, social, np.array([0, 1, 2])).tolist() == [True, False, False]


def row(model: str, inputs: str, val: float, ndcg: float, cold: float) -> Row:
    return Row(model, inputs, {}, val, ndcg, 0.1, cold, 0.1, 1.0)


def test_the_verdict_compares_the_models_chosen_on_validation() -> None:
    rows = [
        row("ease", "-", 0.06, 0.060, 0.040),
        row("item_knn", "-", 0.05, 0.070, 0.050),  # best on test, not on validation
        row("social_pop", "social", 0.07, 0.062, 0.045),
    ]
    text = verdict(rows)
    assert text.startswith("best social (social_pop) vs best non-social (ease)")
    assert "NDCG@10 0.0620 vs 0.0600 (met)" in text
    assert "+12.5% (target +10%: met)" in text
    rows[2] = row("social_pop", "social", 0.07, 0.059, 0.043)
    assert "(missed)" in verdict(rows) and "+7.5% (target +10%: missed)" in verdict(rows)


def test_the_leaderboard_shows_each_models_inputs_and_a_missing_reference() -> None:
    assert declared_inputs("social_gcn") == "social" and declared_inputs("ease") == "-"
    assert declared_inputs("sasrec") == "sequences"
    rows = [
        row("ease", "-", 0.06, 0.060, 0.040),
        Row("cornac_sbpr", "social", {}, 0, 0, 0, 0, 0, 0, note="cornac is not installed"),
    ]
    lines = report(rows).splitlines()
    assert lines[0].split()[:2] == ["model", "inputs"]
    assert lines[1].startswith("ease         -")
    assert lines[2] == "cornac_sbpr  social    cornac is not installed"
