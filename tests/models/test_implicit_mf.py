"""ALS and BPR through implicit: what the adapter adds (factors, fold-in, progress, loading)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from models import ALS, BPR, load_recommender

# 6 users x 4 items: users 0-2 like items 0, 1; users 3-5 like items 2, 3.
X = sp.csr_matrix(
    np.array(
        [[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=np.float32,
    )
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.events.append("begin")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.events.append(epoch)


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_scores_are_user_factors_times_item_factors(cls: type) -> None:
    model = cls(factors=2, iterations=5, num_threads=1).fit(X)
    np.testing.assert_allclose(
        model.score(np.arange(6)), model.user_factors_ @ model.item_factors_.T, rtol=1e-6
    )


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_progress_callbacks_hear_every_iteration_and_are_not_kept(cls: type) -> None:
    recorder = Recorder()
    model = cls(factors=2, iterations=3, num_threads=1).fit(X, callbacks=[recorder])
    assert recorder.events == ["begin", 0, 1, 2]
    assert not hasattr(model, "_fit_callbacks")


def test_als_folds_in_a_new_history_with_the_item_factors_fixed() -> None:
    model = ALS(factors=2, regularization=0.1, alpha=3.0, iterations=10, num_threads=1).fit(X)
    # user 1 saw item 0 in training; a history with item 1 instead moves the user
    history = X.tolil()
    history[1, 0], history[1, 1] = 0, 1
    history = sp.csr_matrix(history)
    folded = model.score(np.array([1]), history=history)
    assert not np.allclose(folded, model.score(np.array([1])))
    # the fold-in is the ALS least-squares solution for that row: preference p, confidence
    # alpha on the observed item and 1 elsewhere (implicit's convention)
    y = model.item_factors_.astype(np.float64)
    p = np.array([0, 1, 0, 0], dtype=np.float64)
    c = np.where(p > 0, 3.0, 1.0)
    a = y.T @ (c[:, None] * y) + 0.1 * np.eye(2)
    expected = np.linalg.solve(a, y.T @ (c * p)) @ y.T
    np.testing.assert_allclose(folded[0], expected, rtol=1e-3, atol=1e-4)
    # the training history itself scores with the trained factors
    np.testing.assert_array_equal(model.score(np.array([1]), history=X), model.score(np.array([1])))


def test_bpr_keeps_trained_factors_whatever_the_history() -> None:
    model = BPR(factors=2, iterations=5, num_threads=1).fit(X)
    history = sp.csr_matrix(np.ones((6, 4), dtype=np.float32))
    np.testing.assert_array_equal(
        model.score(np.array([2]), history=history), model.score(np.array([2]))
    )


def test_bpr_popularity_correction_adds_log_item_counts() -> None:
    """implicit draws negatives in proportion to popularity; the correction adds
    ``weight * log(1 + count)`` per item, nothing else."""
    matrix = X.tolil()
    matrix[1, 3] = 1  # item counts 2, 2, 2, 3
    matrix = sp.csr_matrix(matrix)
    plain = BPR(factors=2, iterations=5, num_threads=1).fit(matrix)
    corrected = BPR(factors=2, iterations=5, num_threads=1, popularity_correction=0.5)
    corrected.fit(matrix)
    np.testing.assert_array_equal(corrected.item_factors_, plain.item_factors_)
    expected = plain.score(np.arange(6)) + 0.5 * np.log1p(np.array([2, 2, 2, 3]))
    np.testing.assert_allclose(corrected.score(np.arange(6)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (ALS, {"factors": 0}, "factors must be >= 1"),
        (ALS, {"alpha": 0.0}, "alpha must be > 0"),
        (BPR, {"learning_rate": 0.0}, "learning_rate must be > 0"),
        (BPR, {"regularization": -1.0}, "regularization must be >= 0"),
        (BPR, {"popularity_correction": -1.0}, "popularity_correction must be >= 0"),
    ],
)
def test_bad_settings_say_what_was_expected(cls: type, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**params).fit(X)


def test_a_saved_model_loads_and_scores_without_implicit(tmp_path) -> None:
    model = ALS(factors=2, iterations=5, num_threads=1).fit(X)
    model.save(tmp_path / "als")
    np.testing.assert_array_equal(
        np.load(tmp_path / "als" / "item_factors.npy"), model.item_factors_
    )
    code = (
        "import sys, numpy as np; from models import load_recommender; "
        f"m = load_recommender({str(tmp_path / 'als')!r}); "
        "m.recommend(np.arange(6), 2); print('implicit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    loaded = load_recommender(tmp_path / "als")
    np.testing.assert_array_equal(loaded.score(np.arange(6)), model.score(np.arange(6)))
