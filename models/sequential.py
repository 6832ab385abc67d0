"""What sequence-aware recommenders share: their inputs, windows and the scoring fallback.

A sequence model needs ``fit(interactions, sequences=...)`` (each user's item
indices, oldest first; see :mod:`models.inputs`) and raises ``ValueError``
without it. It keeps the training sequences as ``sequences_``.

What it reads at scoring time, for each requested user:

1. ``recommend(..., sequences=seqs)``: ``seqs[user]``, as given;
2. ``recommend(..., history=csr)`` without order: the user's training sequence
   restricted to the items still in ``history`` (in training order), followed by
   the history items that are not in the training sequence, in item-index order.
   Those arrived after training, so they are treated as the most recent; their
   mutual order is unknown and index order is at least deterministic;
3. neither: the training sequence.

Only the last ``max_len`` items are used. A user with an empty sequence gets the
scores of the empty input (learned biases only: a non-personalised ranking).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from models.inputs import ItemSequences
from models.keras_base import (
    KerasRecommender,
    KerasTrainingSettings,
    ScoreBatchSize,
    keras_memory,
)
from models.memory import INDEX, DataShape, MemoryEstimate
from models.width import MAX_ITEMS, MaxItems, RestrictedOutput

#: float32 arrays of a training batch's logits size alive in one step of a full-softmax
#: sequence model: the logits, the softmax, its gradient and the logits' gradient
SEQUENCE_ACTIVATIONS = 4
#: bytes of a small numpy array (a view or a short copy) or Python object kept in a list
#: per training example, with the list's pointer
PY_OBJECT = 120

PAD = 0  # network inputs hold item index + 1; 0 is padding


def left_padded(sequences: ItemSequences, length: int) -> np.ndarray:
    """The last ``length`` items of each sequence as ``item + 1``, left-padded with 0."""
    out = np.zeros((len(sequences), length), dtype=np.int32)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq, dtype=np.int32)[max(len(seq) - length, 0) :]
        if tail.size:
            out[row, length - len(tail) :] = tail + 1
    return out


def next_item_examples(
    sequences: ItemSequences, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(users, inputs, targets)``: for every position t >= 1 of every sequence, the
    previous ``length`` items (left-padded, ``item + 1``) and the item at t."""
    users, prefixes, targets = [], [], []
    for user, seq in enumerate(sequences):
        for t in range(1, len(seq)):
            users.append(user)
            prefixes.append(seq[max(0, t - length) : t])
            targets.append(seq[t])
    return (
        np.asarray(users, dtype=np.int32),
        left_padded(prefixes, length),
        np.asarray(targets, dtype=np.int32),
    )


def sequence_windows(sequences: ItemSequences, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)``, both (n_windows x length): each sequence cut into
    consecutive windows ending at its last item, inputs ``item + 1`` left-padded
    with 0, targets the next item at every position (-1 where there is none).
    Every position t >= 1 of a sequence is a target exactly once."""
    inputs, targets = [], []
    for seq in sequences:
        end = len(seq)
        while end > 1:
            start = max(1, end - length)
            inputs.append(seq[start - 1 : end - 1])
            targets.append(seq[start:end])
            end = start
    x = left_padded(inputs, length)
    y = left_padded(targets, length).astype(np.int64) - 1
    return x, y


def sequence_memory(
    model: str,
    shape: DataShape,
    params: dict[str, Any],
    n_params: int,
    *,
    batch_cells: int,
    examples: dict[str, int],
    output_width: int | None = None,
) -> MemoryEstimate:
    """A sequence model's memory (:func:`models.keras_base.keras_memory`): one batch's
    logits are ``batch_cells`` (batch x positions x items), ``examples`` are the
    training arrays it cuts from the sequences; ``fit`` adds the float32 CSR copy and the
    concatenated sequences it checks (8 bytes an interaction)."""
    data = {
        "the training matrix and the checked sequences, CSR + 8 x interactions": (
            shape.csr_bytes() + 2 * INDEX * shape.interactions
        ),
        **examples,
    }
    return keras_memory(
        model,
        shape,
        params,
        n_params,
        batch_cells=batch_cells,
        activation_copies=SEQUENCE_ACTIVATIONS,
        data=data,
        output_width=output_width,
    )


def window_bytes(shape: DataShape, length: int, stride: int) -> dict[str, int]:
    """Training windows of ``length`` positions ending every ``stride`` items: at most
    interactions / stride + users of them, each an int32 input row, an int64 target row
    (and the int32 one it is cast from) and two small arrays in Python lists."""
    windows = shape.interactions // stride + shape.users
    return {
        "training windows, windows x (16 x positions + 240)": windows
        * (length * (INDEX + INDEX + 2 * INDEX) + 2 * PY_OBJECT)
    }


class SequenceSettings(KerasTrainingSettings):
    """What the sequence models' training takes; each scores ``score_batch_size`` users'
    last items at a time. ``max_items``: the width of the network's item input and output
    (the items with the most training interactions, :mod:`models.width`; 0: every item)."""

    score_batch_size: ScoreBatchSize = 1024
    max_items: MaxItems = MAX_ITEMS


class SequenceRecommender(RestrictedOutput, KerasRecommender):
    """Adapter base for order-aware Keras models; subclasses implement
    ``_training_data(sequences)`` and ``_score_sequences(users, sequences)``, over the
    network's item codes: on a wide catalog the network covers its ``max_items`` head
    items (:mod:`models.width`), so sequences reach it translated, tail items dropped, and
    its scores are widened back to the catalog."""

    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "sequences_",
        "network_",
        "history_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = ("sequences", "validation")
    required_inputs: ClassVar[tuple[str, ...]] = ("sequences",)
    inputs: ClassVar[frozenset[str]] = frozenset({"sequences"})

    def _fit(
        self,
        matrix: sp.csr_matrix,
        sequences: list[np.ndarray],
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
    ) -> None:
        self.sequences_ = sequences
        self._choose_head(matrix)
        self._train(self._training_data(self._head_sequences(sequences)), validation)

    def _training_data(self, sequences: list[np.ndarray]) -> Any:
        raise NotImplementedError

    def _score_sequences(self, users: np.ndarray, sequences: ItemSequences) -> np.ndarray:
        raise NotImplementedError

    def _score_request(
        self, users: np.ndarray, history: sp.csr_matrix, sequences: ItemSequences | None
    ) -> np.ndarray:
        if sequences is None:
            return self._score(users, history)
        return self._scored(users, [sequences[u] for u in users])

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self._scored(users, self.ordered_history(users, history))

    def _scored(self, users: np.ndarray, sequences: ItemSequences) -> np.ndarray:
        """Scores over the catalog of the users' sequences (catalog item indices)."""
        return self._widened(self._score_sequences(users, self._head_sequences(sequences)))

    def _score_columns(
        self, users: np.ndarray, history: sp.csr_matrix, sequences: ItemSequences | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.output_items_ is None:
            return None
        ordered = (
            self.ordered_history(users, history)
            if sequences is None
            else [sequences[u] for u in users]
        )
        return self._head_columns_of(self._score_sequences(users, self._head_sequences(ordered)))

    def ordered_history(self, users: np.ndarray, history: sp.csr_matrix) -> list[np.ndarray]:
        """Each user's ``history`` row in time order, as far as it is known (module doc)."""
        binary = (sp.csr_matrix(history) > 0).tocsr()
        empty = np.empty(0, dtype=np.int64)
        out = []
        for row, user in enumerate(users):
            items = binary.indices[binary.indptr[row] : binary.indptr[row + 1]]
            known = self.sequences_[user] if user < len(self.sequences_) else empty
            out.append(np.concatenate([known[np.isin(known, items)], np.setdiff1d(items, known)]))
        return out

    def _batched(self, network: Any, *inputs: np.ndarray) -> np.ndarray:
        """``network`` over the aligned arrays ``inputs``, ``score_batch_size`` rows at a time."""
        n, step = len(inputs[0]), self.params["score_batch_size"]
        out = np.empty((n, self.network_items), dtype=np.float32)
        for start in range(0, n, step):
            block = [x[start : start + step] for x in inputs]
            out[start : start + step] = self._predict(
                network, block if len(block) > 1 else block[0]
            )
        return out

    def _save_state(self, directory: Path) -> None:
        lengths = np.array([len(s) for s in self.sequences_], dtype=np.int64)
        np.save(directory / "sequence_lengths.npy", lengths)
        items = np.concatenate([np.empty(0, np.int64), *self.sequences_])
        np.save(directory / "sequence_items.npy", items)
        self._save_head(directory)
        super()._save_state(directory)

    def _load_state(self, directory: Path) -> None:
        lengths = np.load(directory / "sequence_lengths.npy")
        items = np.load(directory / "sequence_items.npy").astype(np.int64)
        self.sequences_ = np.split(items, np.cumsum(lengths)[:-1])
        self._load_head(directory)  # the network is built at its width
        super()._load_state(directory)
