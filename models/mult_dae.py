"""Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

A user's binarised history is L2-normalised, corrupted by dropout, encoded by one
tanh layer and decoded to one logit per item; the loss is the multinomial
negative log-likelihood of the history under the softmax of the logits. At
scoring time the (uncorrupted) history goes through the same network, so users
who gained interactions after training are folded in without retraining.

Keras 3 with the TensorFlow backend; TensorFlow is imported only when a model is
built, fitted or loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from models.base import BaseRecommender


def multinomial_nll(y_true: Any, logits: Any) -> Any:
    """Per-example multinomial negative log-likelihood: -sum_i x_i log softmax(z)_i."""
    from keras import ops

    return -ops.sum(ops.log_softmax(logits, axis=-1) * y_true, axis=-1)


def build_network(n_items: int, hidden_dim: int, dropout: float, l2: float, seed: int) -> Any:
    """The autoencoder as a functional Keras model mapping histories to item logits."""
    import keras

    reg = keras.regularizers.L2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=(n_items,), name="history")
    x = keras.layers.UnitNormalization(name="l2_normalize")(inputs)
    x = keras.layers.Dropout(dropout, seed=seed, name="input_dropout")(x)
    h = keras.layers.Dense(
        hidden_dim,
        activation="tanh",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        kernel_regularizer=reg,
        name="encoder",
    )(x)
    logits = keras.layers.Dense(
        n_items,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1),
        kernel_regularizer=reg,
        name="decoder",
    )(h)
    return keras.Model(inputs, logits, name="mult_dae")


def _batches(matrix: sp.csr_matrix, batch_size: int, seed: int) -> Any:
    """A Keras PyDataset of dense (x, x) batches from a CSR matrix, reshuffled each epoch."""
    import keras

    class _HistoryBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(matrix.shape[0])

        def __len__(self) -> int:
            return int(np.ceil(matrix.shape[0] / batch_size))

        def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
            rows = self.order[idx * batch_size : (idx + 1) * batch_size]
            x = matrix[rows].toarray()
            return x, x

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(matrix.shape[0])

    return _HistoryBatches()


class MultDAE(BaseRecommender):
    name: ClassVar[str] = "mult_dae"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "network_", "history_")

    def __init__(
        self,
        hidden_dim: int = 200,
        dropout: float = 0.5,
        l2: float = 1e-5,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        seed: int = 42,
        score_batch_size: int = 2048,
    ) -> None:
        super().__init__(
            hidden_dim=hidden_dim,
            dropout=dropout,
            l2=l2,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            score_batch_size=score_batch_size,
        )

    def _build(self, n_items: int, for_training: bool = True) -> Any:
        import keras

        p = self.params
        keras.utils.set_random_seed(p["seed"])
        network = build_network(n_items, p["hidden_dim"], p["dropout"], p["l2"], p["seed"])
        if not for_training:
            return network
        network.compile(
            optimizer=keras.optimizers.Adam(learning_rate=p["learning_rate"]),
            loss=multinomial_nll,
        )
        return network

    def _fit(self, matrix: sp.csr_matrix) -> None:
        binary = (matrix > 0).astype(np.float32).tocsr()
        network = self._build(binary.shape[1])
        # Users with no training history carry no signal for the autoencoder.
        active = np.flatnonzero(np.diff(binary.indptr) > 0)
        data = _batches(binary[active], self.params["batch_size"], self.params["seed"])
        fit_history = network.fit(data, epochs=self.params["epochs"], verbose=0, shuffle=False)
        self.network_ = network
        self.history_ = {k: [float(v) for v in vals] for k, vals in fit_history.history.items()}

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        from keras import ops

        binary = (history > 0).astype(np.float32)
        step = self.params["score_batch_size"]
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        for start in range(0, len(users), step):
            x = binary[start : start + step].toarray()
            out[start : start + step] = ops.convert_to_numpy(self.network_(x, training=False))
        return out

    def _save_state(self, directory: Path) -> None:
        # Weights of the layers only: a loaded model scores, it does not resume training.
        self.network_.save_weights(directory / "network.weights.h5")
        (directory / "history.json").write_text(json.dumps(self.history_))

    def _load_state(self, directory: Path) -> None:
        network = self._build(self.train_matrix_.shape[1], for_training=False)
        network.load_weights(directory / "network.weights.h5")
        self.network_ = network
        self.history_ = json.loads((directory / "history.json").read_text())
