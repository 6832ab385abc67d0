"""What every Keras recommender shares: seeding, batching, early stopping, persistence.

Pattern of TensorFlow Recommenders, in Keras 3: a model class builds small Keras
layers/towers and an explicit loss; :class:`KerasRecommender` is the adapter that
satisfies the :mod:`models.base` protocol around them.

* Seeded: every random initializer and dropout layer gets its own seed derived
  from ``seed`` (:class:`SeededInitializers`), ``keras.utils.set_random_seed(seed)``
  runs before building, and batches are shuffled by a ``numpy`` generator seeded
  with ``seed``; the same seed gives the same recommendations. An initializer left
  without a seed would draw one from Python's global ``random``, which any other
  thread of the process (a server, a client retrying with jitter) may have advanced.
* ``fit(..., validation=(users, relevant))``: after every epoch the model ranks
  all items for the validation users (training items excluded) and computes
  NDCG@``val_k`` with :func:`models.metrics.ndcg_at_k`; training stops after
  ``patience`` epochs without improvement and the best epoch's weights are kept.
* ``history_``: per-epoch ``loss`` (and ``val_ndcg`` when validating).
* ``save``/``load``: the layers' weights (``network.weights.h5``) and the config;
  a loaded model rebuilds the same network and scores exactly as the saved one.

TensorFlow/Keras are imported inside functions only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.base import BaseRecommender, ModelSettings
from models.memory import (
    FLOAT32,
    DataShape,
    MemoryEstimate,
    block_rows,
    dense_bytes,
    score_users,
    summed,
)
from models.metrics import ndcg_at_k
from models.ranking import columns_top_k, top_k

Batch = tuple[Any, Any]

# Bounds of the training settings, for a model that declares its own default of one
Epochs = Annotated[int, Field(ge=0)]  # 0: the seeded starting weights, untrained
BatchSize = Annotated[int, Field(ge=1)]
LearningRate = Annotated[float, Field(gt=0)]
Patience = Annotated[int, Field(ge=1)]
ScoreBatchSize = Annotated[int, Field(ge=1)]
Dropout = Annotated[float, Field(ge=0, lt=1)]


class KerasTrainingSettings(ModelSettings):
    """What every Keras model's training takes: ``epochs`` of Adam at ``learning_rate``
    over shuffled batches of ``batch_size`` examples, everything random drawn from
    ``seed``; with a validation target, training stops after ``patience`` epochs without
    a better NDCG@``val_k``. Training also stops after ``max_train_minutes`` of wall time
    (0: no limit), within the epoch then running, which is still checked: a wide night's
    epoch can take an hour, and the night must end (with a validation target, the best
    epoch checked is kept). Scoring runs ``score_batch_size`` users at a time."""

    epochs: Epochs = 30
    batch_size: BatchSize = 128
    learning_rate: LearningRate = 1e-3
    seed: int = 42
    patience: Patience = 3
    val_k: int = Field(10, ge=1)
    score_batch_size: ScoreBatchSize = 2048
    max_train_minutes: float = Field(60.0, ge=0)


# -- memory -------------------------------------------------------------------------
#: float32 copies of every weight while a Keras model trains: the weights, Adam's two
#: moments, the gradient, and the best epoch's weights early stopping keeps (get_weights)
TRAINING_COPIES = 5
#: n_items-wide float32 arrays per row of a scored block inside ``_predict``: the network's
#: input or hidden tensors, its logits and their numpy copy
SCORE_COPIES = 3


def dense_params(n_in: int, n_out: int) -> int:
    """Weights of a Keras Dense layer: the kernel and the bias."""
    return n_in * n_out + n_out


def keras_memory(
    model: str,
    shape: DataShape,
    params: dict[str, Any],
    n_params: int,
    *,
    batch_cells: int,
    activation_copies: int,
    data: dict[str, int],
    output_width: int | None = None,
) -> MemoryEstimate:
    """The memory of a Keras recommender trained with Adam and early stopping, from its
    weights (``n_params``), the n_items-wide cells of one training batch (``batch_cells``:
    e.g. batch_size x n_items logits) and ``activation_copies`` float32 arrays of that
    size alive in one training step (inputs, activations, softmax, their gradients), and
    the training data it builds (``data``: phrase -> bytes).

    Early stopping ranks the validation users after each epoch in blocks of
    ``score_batch_size`` users, fewer on a wide catalog (:func:`models.memory.block_rows`;
    ranked all at once, 50,000 users x 57,053 items took 22.8 GB): a dense block x items
    float32 matrix and top-k's copy of it. Scoring a block of users fills a dense block x
    items float32 matrix; inside the network ``SCORE_COPIES`` arrays of the block's rows
    x ``output_width`` (the items the network outputs; default every item).
    """
    items = shape.items
    width = items if output_width is None else output_width
    block = block_rows(min(shape.users, params["score_batch_size"]), items)
    step = min(score_users(items), params["score_batch_size"])
    weights = n_params * FLOAT32
    train = {
        **data,
        f"weights, Adam moments, gradient and best-epoch copy, {TRAINING_COPIES} x 4 x "
        "parameters": TRAINING_COPIES * weights,
        f"training batch activations, {activation_copies} x 4 x batch cells": (
            activation_copies * batch_cells * FLOAT32
        ),
        "a validation block's scores and top-k's copy, 2 x 4 x block users x items": 2
        * dense_bytes(block, items),
        "network outputs of a validation block, 3 x 4 x block users x outputs": (
            SCORE_COPIES * dense_bytes(block, width)
        ),
    }
    score = {
        "weights, 4 x parameters": weights,
        "dense scores of a block, 4 x block users x items": dense_bytes(score_users(items), items),
        "network outputs of a block, 3 x 4 x block users x outputs": SCORE_COPIES
        * dense_bytes(step, width),
    }
    return summed(model, train, score)


class SeededInitializers:
    """Keras initializers with seeds ``seed``, ``seed + 1``, ... in the order asked for;
    a network built in the same order gets the same starting weights."""

    def __init__(self, seed: int) -> None:
        self._next = seed

    def _seed(self) -> int:
        self._next += 1
        return self._next - 1

    def next_seed(self) -> int:
        """The next seed, for a layer that takes one itself (dropout, attention)."""
        return self._seed()

    def glorot(self) -> Any:
        """Keras' default for Dense kernels."""
        import keras

        return keras.initializers.GlorotUniform(seed=self._seed())

    def uniform(self, limit: float = 0.05) -> Any:
        """Keras' default for embeddings: uniform in ``[-limit, limit]``."""
        import keras

        return keras.initializers.RandomUniform(-limit, limit, seed=self._seed())


def shuffled_batches(
    n_rows: int, batch_size: int, seed: int, make_batch: Callable[[np.ndarray], Batch]
) -> Any:
    """A Keras PyDataset over ``n_rows`` examples, reshuffled each epoch by a seeded generator.

    ``make_batch(row_indices)`` returns one ``(inputs, targets)`` batch.
    """
    import keras

    class _Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n_rows)

        def __len__(self) -> int:
            return int(np.ceil(n_rows / batch_size))

        def __getitem__(self, idx: int) -> Batch:
            return make_batch(self.order[idx * batch_size : (idx + 1) * batch_size])

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(n_rows)

    return _Batches()


def validation_callback(
    ranked: Callable[[], np.ndarray],
    relevant: sp.csr_matrix,
    k: int,
    patience: int,
) -> Any:
    """Keras callback: NDCG@k of ``ranked()`` (each validation user's top-k items) after
    each epoch, early stopping, best weights restored."""
    import keras

    class _ValidationNDCG(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.values: list[float] = []
            self.best = -np.inf
            self.best_weights: list[np.ndarray] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = ndcg_at_k(ranked(), relevant, k)
            self.values.append(value)
            if value > self.best:
                self.best, self.best_weights = value, self.model.get_weights()
            elif len(self.values) - 1 - int(np.argmax(self.values)) >= patience:
                self.model.stop_training = True

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return _ValidationNDCG()


def time_limit(minutes: float) -> Any:
    """Keras callback: training stops once ``minutes`` of wall time have passed since it
    began (checked after every batch and epoch); ``stopped`` says whether it did."""
    import time

    import keras

    class _TimeLimit(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()
            self.stopped = False

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.started = time.monotonic()

        def _check(self) -> None:
            if time.monotonic() - self.started > minutes * 60:
                self.model.stop_training = self.stopped = True

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self._check()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._check()

    return _TimeLimit()


def plateau_schedule(check: Any, patience: int, factor: float = 0.5) -> Any:
    """Keras callback after ``check`` (a :func:`validation_callback`): the optimizer's
    learning rate is multiplied by ``factor`` after ``patience`` epochs in a row without a
    new best validation NDCG (the count restarts after each cut)."""
    import keras

    class _Plateau(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.wait = 0

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = check.values
            improved = len(values) == 1 or values[-1] > max(values[:-1])
            self.wait = 0 if improved else self.wait + 1
            if self.wait >= patience:
                rate = self.model.optimizer.learning_rate
                rate.assign(float(rate.numpy()) * factor)
                self.wait = 0

    return _Plateau()


class KerasRecommender(BaseRecommender):
    """Adapter base: subclasses build ``network_`` and implement ``_fit`` and ``_score``.

    Subclasses implement ``_build_network()`` (the Keras model, from ``params`` and
    the fitted shapes; it may also set private scoring helpers) and ``_loss()``, and
    declare their settings as a subclass of :class:`KerasTrainingSettings`. A model
    that also takes ``lr_plateau`` (N > 0) halves its learning rate after N epochs
    without a better validation NDCG (only when fitted with a validation target).
    """

    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "network_", "history_")
    concurrent_scoring: ClassVar[bool] = False  # TensorFlow schedules its own threads
    settings_class: ClassVar[type[ModelSettings]] = KerasTrainingSettings

    def _build_network(self) -> Any:
        raise NotImplementedError

    def _loss(self) -> Any:
        raise NotImplementedError

    def _callbacks(self) -> list[Any]:
        """Extra Keras callbacks for training (e.g. KL annealing)."""
        return []

    def _new_network(self, for_training: bool = True) -> Any:
        """A freshly seeded network, compiled when it is to be trained."""
        import keras

        keras.utils.set_random_seed(self.params["seed"])
        network = self._build_network()
        if for_training:
            network.compile(
                optimizer=keras.optimizers.Adam(learning_rate=self.params["learning_rate"]),
                loss=self._loss(),
                jit_compile=False,
            )
            # Optimizer slots created eagerly: the train step is then traced once, not twice.
            network.optimizer.build(network.trainable_variables)
        return network

    def _train(self, data: Any, validation: tuple[np.ndarray, sp.csr_matrix] | None = None) -> None:
        """Build, train on ``data`` (a PyDataset), set ``network_`` and ``history_``."""
        network = self._new_network()
        self.network_ = network  # the validation callback scores through it
        callbacks, check = self._training_callbacks(validation)
        fit_history = network.fit(
            data, epochs=self.params["epochs"], verbose=0, shuffle=False, callbacks=callbacks
        )
        self.history_ = self._history(fit_history.history["loss"], check)

    def _training_callbacks(
        self, validation: tuple[np.ndarray, sp.csr_matrix] | None
    ) -> tuple[list[Any], Any]:
        """This fit's Keras callbacks (the model's own, the validation check when there is
        a target, then the caller's) and the check (None without a target). The check
        scores through ``network_``, which must be set first."""
        callbacks = self._callbacks()
        check = None
        if validation is not None:
            users, relevant = validation
            check = validation_callback(
                lambda: self._validation_top_k(users, self.params["val_k"]),
                relevant,
                self.params["val_k"],
                self.params["patience"],
            )
            callbacks.append(check)
            if self.params.get("lr_plateau"):
                callbacks.append(plateau_schedule(check, self.params["lr_plateau"]))
        if self.params["max_train_minutes"]:  # after the check: the epoch is checked first
            callbacks.append(time_limit(self.params["max_train_minutes"]))
        return callbacks + list(self._fit_callbacks), check  # after the check: epoch complete

    def _validation_top_k(self, users: np.ndarray, k: int) -> np.ndarray:
        """The top-k unseen items of each validation user, ranked ``score_batch_size``
        users at a time (the model scores in batches of that size too), fewer on a wide
        catalog (:func:`models.memory.block_rows`), so memory holds one block of scores,
        never validation users x items."""
        step = block_rows(self.params["score_batch_size"], self.train_matrix_.shape[1])
        blocks = []
        for start in range(0, len(users), step):
            block = users[start : start + step]
            rows = self.train_matrix_[block]
            columns = self._score_columns(block, rows, None)
            if columns is not None:  # a network over some items: ranked over those
                blocks.append(columns_top_k(*columns, k, exclude=rows)[0])
                continue
            scores = self._score_request(block, rows, None)
            blocks.append(top_k(scores, k, exclude=rows)[0])
        return np.concatenate(blocks) if blocks else np.empty((0, k), dtype=np.int64)

    @staticmethod
    def _history(losses: list[float], check: Any) -> dict[str, list[float]]:
        """``history_``: the loss per epoch, and validation NDCG per epoch when checked."""
        history = {"loss": [float(v) for v in losses]}
        if check is not None:
            history["val_ndcg"] = [float(v) for v in check.values]
        return history

    def refit_params(self) -> dict[str, Any]:
        """Settings that repeat this fit without a validation target: training stops at
        the epoch early stopping kept (the best validation NDCG)."""
        self._check_fitted()
        curve = self.history_.get("val_ndcg") or []
        if not curve:
            return dict(self.params)
        return {**self.params, "epochs": int(np.argmax(curve)) + 1}

    def _predict(self, network: Any, inputs: Any) -> np.ndarray:
        """``network(inputs)`` in inference mode, as a numpy array."""
        from keras import ops

        return np.asarray(ops.convert_to_numpy(network(inputs, training=False)))

    def _save_state(self, directory: Path) -> None:
        # Weights of the layers only: a loaded model scores, it does not resume training.
        self.network_.save_weights(directory / "network.weights.h5")
        (directory / "history.json").write_text(json.dumps(self.history_))

    def _load_state(self, directory: Path) -> None:
        network = self._new_network(for_training=False)
        network.load_weights(directory / "network.weights.h5")
        self.network_ = network
        self.history_ = json.loads((directory / "history.json").read_text())
