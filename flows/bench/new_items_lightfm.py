"""LightFM (WARP) on the new-items split, with the same encoded content as the models.

LightFM is an optional extra (``pip install -e ".[lightfm]"``: the maintained
``rectools-lightfm`` fork, which builds where LightFM 1.17 from its own sdist does not).

Item features, a sparse matrix with one row per item in the split's content order (kept
items, then held-out ones), built from the :class:`models.content.ItemContent` every
content model is given:

* ``text`` and ``categories``: one column per token / value id (an ML-100K title's
  words, its genres), 1 where the item has it; the padding and unknown ids are left out;
* ``category``: one column per value id; ``numeric``: one column holding the z-score
  (the year); ``coordinates`` and ``vector``: their dense columns (a coordinate's unit
  vector x, y, z); images are not used;
* with ``cells``, coordinates instead as grid cells: one column per cell of
  :data:`GRID_DEGREES` degrees of latitude and longitude (each scale), 1 where the item
  lies in it; the cells are read back from the unit vector, so LightFM gets no more than
  the content models do (less: a cell, not the point); a new item's cell may hold no
  kept item (its column then was never trained);
* with ``identity``: one more column per kept item (its id), 1 on its own row and empty
  on every held-out row: a new item is described by its content alone;

each row then divided by the sum of its absolute values (as ``lightfm.data.Dataset``
normalises item features). Users get LightFM's identity features. The model is fitted on
the split's training events (kept items), its epochs chosen on the kept items'
validation NDCG (as the Keras models stop early), and scores each evaluated user
against the held-out rows of the feature matrix.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.content import ItemContent
from models.metrics import evaluate_rankings
from models.ranking import top_k
from tasks.evaluation.new_items import NewItemsSplit

INSTALL = 'pip install -e ".[lightfm]"'
#: the grid cells' sizes in degrees (with ``cells``): about 110 km and 11 km of latitude
GRID_DEGREES = (1.0, 0.1)


def lightfm_missing() -> str | None:
    """None when LightFM imports, else the line to print (what is missing, how to get it)."""
    try:
        import lightfm  # noqa: F401
    except ImportError as exc:
        return (
            f"lightfm: not installed ({exc}); its rows are skipped. Install the optional "
            f"extra: {INSTALL} (the rectools-lightfm fork of LightFM 1.17)"
        )
    return None


def item_features(
    content: ItemContent, n_kept: int, identity: bool, cells: bool = False
) -> sp.csr_matrix:
    """The items' features as LightFM reads them (module docstring), rows as ``content``."""
    n_items = len(content)
    blocks: list[sp.csr_matrix] = []
    if identity:
        ids = sp.identity(n_kept, dtype=np.float32, format="csr")
        blocks.append(sp.vstack([ids, sp.csr_matrix((n_items - n_kept, n_kept))]).tocsr())
    for name, kind in content.kinds.items():
        values, mask = content.values[name], content.masks[name]
        if kind in ("text", "categories", "category"):
            ids = np.asarray(values).reshape(n_items, -1)
            rows = np.repeat(np.arange(n_items), ids.shape[1])
            keep = ids.ravel() >= 2  # 0 padding, 1 unknown
            matrix = sp.csr_matrix(
                (np.ones(keep.sum(), np.float32), (rows[keep], ids.ravel()[keep])),
                shape=(n_items, content.sizes[name]),
            )
            matrix.data[:] = 1.0  # a word twice in a title is one feature
            blocks.append(matrix)
        elif kind == "coordinates" and cells:
            blocks.append(grid_cells(np.asarray(values, dtype=np.float64), mask))
        elif kind in ("numeric", "coordinates", "vector"):
            dense = np.asarray(values, dtype=np.float32).reshape(n_items, -1)
            blocks.append(sp.csr_matrix(dense * mask[:, None]))
    if not blocks:
        raise ValueError("lightfm: the content has no kind it can use (only images?)")
    features = sp.hstack(blocks).tocsr()
    features.eliminate_zeros()
    norms = np.asarray(abs(features).sum(axis=1)).ravel()
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ features, dtype=np.float32)


def grid_cells(
    xyz: np.ndarray, mask: np.ndarray, degrees: tuple[float, ...] = GRID_DEGREES
) -> sp.csr_matrix:
    """Items x cells: per scale in ``degrees``, a 1 in the column of the latitude /
    longitude cell the unit vector ``xyz`` (x, y, z) points into; rows without a
    coordinate (``mask`` false) are empty. Columns: the cells some item lies in."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(len(mask), 3)
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    rows = np.flatnonzero(mask)
    blocks = []
    for size in degrees:
        keys = np.stack([np.floor(lat[rows] / size), np.floor(lon[rows] / size)], axis=1)
        _, column = np.unique(keys, axis=0, return_inverse=True)
        column = column.ravel()
        n_cells = int(column.max()) + 1 if len(column) else 0
        blocks.append(
            sp.csr_matrix(
                (np.ones(len(rows), np.float32), (rows, column)), shape=(len(mask), n_cells)
            )
        )
    return sp.hstack(blocks).tocsr()


def lightfm_row(
    s: NewItemsSplit,
    content: ItemContent,
    k: int,
    seed: int,
    epochs: int = 100,
    identity: bool = False,
    components: int = 64,
    threads: int = 1,
    every: int = 5,
    cells: bool = False,
) -> dict[str, Any]:
    """LightFM WARP fitted on the split's training events with the items' features
    (and their ids, with ``identity``), scored on the held-out items: a leaderboard row.

    Its epochs are chosen as the Keras models' are: validation NDCG@k on the kept items
    every ``every`` epochs up to ``epochs``, the best count kept (the model fitted again
    from scratch for it). ``cells``: coordinates as grid cells (:func:`grid_cells`).
    One thread by default: LightFM's threads update the model
    without locks, so only one thread gives the same figures for the same seed."""
    features = item_features(content, s.n_kept, identity, cells)
    kept = features[: s.n_kept]
    train = s.warm.matrix("train")
    valid_users, valid_relevant = s.warm.target("valid", ("train",))
    start = time.perf_counter()
    model = _lightfm(components, seed)
    best, best_epochs, curve = -1.0, every, []
    for done in range(every, epochs + 1, every):
        model.fit_partial(train.tocoo(), item_features=kept, epochs=every, num_threads=threads)
        recommended = _top(model, valid_users, kept, k, exclude=train[valid_users])
        valid = evaluate_rankings(recommended, valid_relevant, k)[f"ndcg@{k}"]
        curve.append(valid)
        if valid > best:
            best, best_epochs = valid, done
    if best_epochs != len(curve) * every:
        model = _lightfm(components, seed)
        model.fit(train.tocoo(), item_features=kept, epochs=best_epochs, num_threads=threads)
    train_seconds = time.perf_counter() - start
    users, relevant = s.target()
    start = time.perf_counter()
    recommended = _top(model, users, features[s.n_kept :], k)
    metrics = evaluate_rankings(recommended, relevant, k, n_items=len(s.new_items))
    name = ("lightfm+ids" if identity else "lightfm") + (" (cells)" if cells else "")
    degrees = "/".join(f"{d:g}" for d in GRID_DEGREES)
    return {
        "model": name,
        "inputs": "content",
        "note": "WARP on content features"
        + (f", coordinates as {degrees} degree grid cells" if cells else "")
        + (" and kept items' ids (none for new items)" if identity else " only"),
        "params": {
            "loss": "warp",
            "no_components": components,
            "epochs": best_epochs,
            "cells": cells,
        },
        f"valid_ndcg@{k}": best,
        **{f"test_{m}": v for m, v in metrics.items()},
        "epochs": best_epochs,
        "train_seconds": round(train_seconds, 2),
        "scoring_seconds": round(time.perf_counter() - start, 3),
    }


def _lightfm(components: int, seed: int) -> Any:
    from lightfm import LightFM

    return LightFM(no_components=components, loss="warp", random_state=seed)


def _top(
    model: Any, users: np.ndarray, features: sp.csr_matrix, k: int, exclude: Any = None
) -> np.ndarray:
    """The top-k rows of ``features`` for each of ``users`` by the model's scores."""
    biases, vectors = model.get_item_representations(features)
    _, user_vectors = model.get_user_representations()
    scores = (user_vectors[users] @ vectors.T + biases[None, :]).astype(np.float32)
    return top_k(scores, k, exclude=exclude, overwrite=True)[0]
