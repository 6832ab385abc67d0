"""Keras training stops at its time limit, within the epoch, and keeps what it checked."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models import make_recommender


def test_training_stops_at_the_time_limit_and_the_checked_epoch_is_kept() -> None:
    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix((rng.random((64, 30)) < 0.2).astype(np.float32))
    users = np.arange(64)
    # a limit already passed after the first batch: training ends within epoch 1
    params = {"hidden_dim": 8, "batch_size": 8, "epochs": 50, "patience": 50}
    limited = make_recommender("mult_dae", **params, max_train_minutes=1e-9)
    limited.fit(matrix, validation=(users, matrix))
    assert len(limited.history_["loss"]) == 1
    assert len(limited.history_["val_ndcg"]) == 1  # the epoch it stopped in was checked
    free = make_recommender("mult_dae", **{**params, "epochs": 3}, max_train_minutes=0)
    free.fit(matrix, validation=(users, matrix))
    assert len(free.history_["loss"]) == 3
