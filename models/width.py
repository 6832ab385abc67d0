"""A network over a wide catalog: its input and output restricted to the head items.

The Keras models whose output is one logit per item (the autoencoders, the sequence
models) cover the ``max_items`` items with the most training interactions (every item
when the catalog is narrower; ``max_items = 0``: always every item). This is a
restricted output, chosen over a sampled softmax because scoring, not training, is what a
full-width output cannot afford: ranking every user over every item costs users x items
x hidden multiply-adds (500,000 users, 1M items and 200 units: 10^14) whatever the
training did, while a restricted output keeps both training and scoring at users x
``max_items`` x hidden, and its softmax stays exact over the items it covers. The items
left out are the tail, which an output column learns little about (each column learns
only from its own interactions); the model scores them -inf, so it never ranks them, and
the night's other models and fallbacks cover them. Items outside the head are also
dropped from the network's input (a history or a sequence keeps its head items).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.inputs import ItemSequences

#: the head a network covers by default: one epoch of an autoencoder costs users x
#: max_items x hidden (50,000 users x 20,000 items x 200 units: 2 x 10^11 multiply-adds)
MAX_ITEMS = 20_000
MaxItems = Annotated[int, Field(ge=0)]


def network_width(n_items: int, max_items: int) -> int:
    """Items a restricted network covers in a catalog of ``n_items``."""
    return min(n_items, max_items) if max_items else n_items


def head_items(binary: sp.csr_matrix, max_items: int) -> np.ndarray | None:
    """The ``max_items`` columns of ``binary`` with the most interactions (ties: lower
    index), ascending; None when every column fits."""
    n_items = binary.shape[1]
    if network_width(n_items, max_items) == n_items:
        return None
    counts = np.asarray((binary > 0).sum(axis=0)).ravel()
    return np.sort(np.argsort(-counts, kind="stable")[:max_items]).astype(np.int64)


class RestrictedOutput:
    """What a model restricted to its head items keeps and does: ``output_items_`` (None
    when it covers every item), the translation of histories and sequences into the
    network's item codes, and the widening of its scores back to the catalog."""

    output_items_: np.ndarray | None = None
    params: dict[str, Any]
    train_matrix_: sp.csr_matrix
    OUTPUT_FILE: ClassVar[str] = "output_items.npy"

    @property
    def network_items(self) -> int:
        """Width of the network's input and output."""
        if self.output_items_ is not None:
            return int(self.output_items_.size)
        return int(self.train_matrix_.shape[1])

    @property
    def dense_scores(self) -> bool:
        """Ranked over the network's items alone when it covers a subset."""
        return self.output_items_ is None

    def _choose_head(self, matrix: sp.csr_matrix) -> None:
        self.output_items_ = head_items(matrix, self.params["max_items"])

    def _head_columns(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        """``matrix`` (users x catalog) restricted to the network's columns."""
        if self.output_items_ is None:
            return matrix
        return sp.csr_matrix(matrix)[:, self.output_items_].tocsr()

    def _head_sequences(self, sequences: ItemSequences) -> list[np.ndarray]:
        """Each sequence's head items, in order, as network codes."""
        if self.output_items_ is None:
            return [np.asarray(s, dtype=np.int64) for s in sequences]
        codes = np.full(self.train_matrix_.shape[1], -1, dtype=np.int64)
        codes[self.output_items_] = np.arange(self.output_items_.size)
        out = []
        for seq in sequences:
            mapped = codes[np.asarray(seq, dtype=np.int64)]
            out.append(mapped[mapped >= 0])
        return out

    def _head_columns_of(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(scores, items)`` of the network's scores when it covers a subset of the
        catalog (:meth:`models.base.BaseRecommender.score_columns`), else None."""
        if self.output_items_ is None:
            return None
        return scores, self.output_items_

    def _widened(self, scores: np.ndarray) -> np.ndarray:
        """Network scores (rows x network items) over the whole catalog, -inf outside."""
        if self.output_items_ is None:
            return scores
        out = np.full((scores.shape[0], self.train_matrix_.shape[1]), -np.inf, dtype=np.float32)
        out[:, self.output_items_] = scores
        return out

    def _save_head(self, directory: Path) -> None:
        if self.output_items_ is not None:
            np.save(directory / self.OUTPUT_FILE, self.output_items_)

    def _load_head(self, directory: Path) -> None:
        path = directory / self.OUTPUT_FILE
        self.output_items_ = np.load(path) if path.exists() else None
