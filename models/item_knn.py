"""Item-based k-nearest-neighbours (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

Cosine similarity between the binary item columns, shrunk towards zero for items
with little support (Koren, KDD 2008):

    sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) * sqrt(|U_j|) + shrinkage),   sim(i, i) = 0

Each candidate item j keeps only its ``neighbors`` most similar items N(j) (Sarwar
et al.'s neighbourhood of the item being predicted, as in RecBole's ItemKNN); a user's
score for item j sums the similarities of the history items inside that neighbourhood,
``sum over history items i in N(j) of sim(i, j)``, i.e. scores = history @ W with
W[i, j] = sim(i, j) when i is in N(j), else 0: the top ``neighbors`` of each *column*.

Pruning the rows instead (each history item votes for its own nearest items, as
implicit's ItemItemRecommender does) is a different model, and on MovieLens 100K a
worse one: 0.2421 NDCG@10 against 0.2822 with 200 neighbours (random 80/10/10, K=10).
"""

from __future__ import annotations

from math import ceil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.ages import decayed
from models.base import BaseRecommender, ModelSettings
from models.memory import (
    FLOAT32,
    FLOAT64,
    INDEX,
    DataShape,
    MemoryEstimate,
    cooccurring_pairs,
    dense_bytes,
    score_users,
    summed,
)

#: co-occurring pairs per block of :func:`cosine_similarity` (an upper bound, from the
#: block's items' users' history lengths)
BLOCK_PAIRS = 20_000_000
#: bytes per co-occurring pair of a block while it is ranked: the sparse product (float32
#: value, int32 column), its coordinates and float64 similarities, and the power-of-two
#: padded rows :func:`models.ranking.top_k_entries` ranks them in (value and column)
PAIR_BYTES = 64


def item_blocks(binary: sp.csc_matrix, block_pairs: int = BLOCK_PAIRS) -> list[tuple[int, int]]:
    """Consecutive item ranges whose rows of X^T X hold about ``block_pairs`` entries at
    most (a single item whose row is larger gets a block of its own): an item's row has
    at most the summed history lengths of its users."""
    user_lengths = np.diff(sp.csr_matrix(binary).indptr).astype(np.float64)
    bound = np.asarray(binary.T @ user_lengths).ravel()
    ends = np.cumsum(bound)
    blocks, start = [], 0
    n_items = binary.shape[1]
    while start < n_items:
        base = ends[start - 1] if start else 0.0
        stop = int(np.searchsorted(ends, base + block_pairs, side="right"))
        stop = min(max(stop, start + 1), n_items)
        blocks.append((start, stop))
        start = stop
    return blocks


def cosine_similarity(
    matrix: sp.csr_matrix,
    neighbors: int,
    shrinkage: float,
    block_pairs: int = BLOCK_PAIRS,
    weighted: bool = False,
) -> sp.csr_matrix:
    """Item x item shrunk cosine similarity W, pruned to the top ``neighbors`` per column:
    column j holds item j's nearest items (the cosine is symmetric before pruning; equal
    similarities go to the lower item index). Worked out over blocks of items and only
    over the pairs that co-occur, so memory follows the pairs, not items^2. ``weighted``:
    the cosine of the columns' values as they are (interaction weights, e.g. each
    interaction's decay by age), not binarised."""
    from models.ranking import top_k_entries

    if weighted:
        binary = sp.csr_matrix(matrix, dtype=np.float32).tocsc()
        norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
    else:
        binary = (sp.csr_matrix(matrix) > 0).astype(np.float32).tocsc()
        norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    n_items = binary.shape[1]
    keep = min(neighbors, n_items - 1)
    rows, cols, vals = [], [], []
    transposed = binary.T.tocsr()
    pattern = binary
    if weighted:  # the blocks are bounded by counts of pairs, not by weights
        pattern = binary.copy()
        pattern.data = np.ones_like(pattern.data)
    for start, stop in item_blocks(pattern, block_pairs) if keep > 0 else []:
        product = sp.csr_matrix(transposed[start:stop] @ binary)
        product.sort_indices()  # equal similarities: the lower column first
        dots = product.tocoo()
        sims = dots.data / (norms[start + dots.row] * norms[dots.col] + shrinkage + 1e-12)
        other = (dots.row + start != dots.col) & (sims > 0)
        r, c, v, _ = top_k_entries(
            dots.row[other], dots.col[other], sims[other], stop - start, keep
        )
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(
        # row r of a block lists item r's neighbours; they go down column r of W
        (np.concatenate(vals), (np.concatenate(cols), np.concatenate(rows))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )


class ItemKNNSettings(ModelSettings):
    """Each item scored from its ``neighbors`` most similar items; ``shrinkage`` pulls the
    similarity of items with little support towards zero. ``half_life_days``: each
    training interaction is weighted by ``0.5 ** (age / half_life_days)`` (its age in
    days from the newest event fitted on, :mod:`models.ages`) in the item columns the
    cosine compares; None: every interaction weighs 1. Scoring reads the user's history as
    given, unweighted."""

    neighbors: int = Field(200, ge=1)
    shrinkage: float = Field(10.0, ge=0)
    half_life_days: float | None = Field(None, gt=0)


class ItemKNN(BaseRecommender):
    """Item-item collaborative filtering with shrunk cosine similarity."""

    name: ClassVar[str] = "item_knn"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "similarity_")
    fit_inputs: ClassVar[tuple[str, ...]] = ("ages",)
    settings_class: ClassVar[type[ModelSettings]] = ItemKNNSettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Training: CSR copies of the interactions (float32, boolean, float32 CSR and CSC
        and the transpose: 33 bytes an interaction), a block of about ``BLOCK_PAIRS``
        co-occurring pairs while ranked (``PAIR_BYTES`` each), and the kept neighbours: at
        most items x neighbors entries (and no more than the co-occurring pairs), built as
        int64 rows and columns and float32 values, concatenated, then a COO and the
        float32 CSR (76 bytes an entry).
        Scoring: the similarity (8 bytes an entry), the sparse product of a block's
        histories with it (12 bytes a cell; a row has at most items cells, and about
        2 x mean items per user x neighbors) and its dense float32 copy."""
        p = cls.settings(**params).model_dump()
        items = shape.items
        keep = max(min(p["neighbors"], items - 1), 0)
        pairs = cooccurring_pairs(shape)
        entries = min(items * keep, pairs)
        train = {
            "CSR copies of the training matrix, CSR + 29 x interactions": shape.csr_bytes()
            + shape.interactions * (1 + INDEX + 3 * (FLOAT64 + INDEX)),
            f"co-occurring pairs of a block while ranked, {PAIR_BYTES} x pairs": PAIR_BYTES
            * min(BLOCK_PAIRS, pairs),
            "kept neighbours while built, 76 x items x neighbors": entries * 76,
        }
        if p["half_life_days"] is not None:
            train["decayed float64 CSR copy, CSR"] = shape.csr_bytes(FLOAT64)
        row_cells = min(items, ceil(2 * shape.mean_items_per_user) * keep)
        users = score_users(items)
        score = {
            "similarity, 8 x items x neighbors": entries * (FLOAT32 + INDEX),
            "sparse scores of a block, 12 x block users x cells": users
            * row_cells
            * (FLOAT32 + 2 * INDEX),
            "dense scores of a block, 4 x block users x items": dense_bytes(users, items),
        }
        return summed("item_knn", train, score)

    def _fit(self, matrix: sp.csr_matrix, ages: sp.csr_matrix | None = None) -> None:
        half_life = self.params["half_life_days"]
        weighted = half_life is not None
        self.similarity_ = cosine_similarity(
            decayed(matrix, ages, half_life) if weighted else matrix,
            self.params["neighbors"],
            self.params["shrinkage"],
            weighted=weighted,
        )

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self._score_sparse(users, history).toarray(), dtype=np.float32)

    @property
    def dense_scores(self) -> bool:
        return False

    def _score_sparse(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix:
        binary = sp.csr_matrix((history > 0).astype(np.float32))
        return sp.csr_matrix(binary @ self.similarity_)

    def _save_state(self, directory: Path) -> None:
        sp.save_npz(directory / "similarity.npz", self.similarity_)

    def _load_state(self, directory: Path) -> None:
        self.similarity_ = sp.load_npz(directory / "similarity.npz").tocsr()
