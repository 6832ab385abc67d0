"""LightFM (WARP) on the new-items split, with the same encoded content as the models.

LightFM is an optional extra (``pip install -e ".[lightfm]"``: the maintained
``rectools-lightfm`` fork, which builds where LightFM 1.17 from its own sdist does not).

Item features, a sparse matrix with one row per item in the split's content order (kept
items, then held-out ones), built from the :class:`models.content.ItemContent` every
content model is given:

* ``text`` and ``categories``: one column per token / value id (an ML-100K title's
  words, its genres), 1 where the item has it; the padding and unknown ids are left out;
* ``category``: one column per value id; ``numeric``: one column holding the z-score
  (the year); ``coordinates`` and ``vector``: their dense columns; images are not used;
* with ``identity``: one more column per kept item (its id), 1 on its own row and empty
  on every held-out row: a new item is described by its content alone;

each row then divided by the sum of its absolute values (as ``lightfm.data.Dataset``
normalises item features). Users get LightFM's identity features. The model is fitted on
the split's training events (kept items) for a fixed number of epochs, not tuned, and
scores each evaluated user against the held-out rows of the feature matrix.
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


def item_features(content: ItemContent, n_kept: int, identity: bool) -> sp.csr_matrix:
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


def lightfm_row(
    s: NewItemsSplit,
    content: ItemContent,
    k: int,
    seed: int,
    epochs: int = 30,
    identity: bool = False,
    components: int = 64,
    threads: int = 1,
) -> dict[str, Any]:
    """LightFM WARP fitted on the split's training events with the items' features
    (and their ids, with ``identity``), scored on the held-out items: a leaderboard row.
    One thread by default: LightFM's threads update the model without locks, so only one
    thread gives the same figures for the same seed."""
    from lightfm import LightFM

    features = item_features(content, s.n_kept, identity)
    train = s.warm.matrix("train").tocoo()
    model = LightFM(no_components=components, loss="warp", random_state=seed)
    start = time.perf_counter()
    model.fit(train, item_features=features[: s.n_kept], epochs=epochs, num_threads=threads)
    train_seconds = time.perf_counter() - start
    users, relevant = s.target()
    start = time.perf_counter()
    new = features[s.n_kept :]
    biases, vectors = model.get_item_representations(new)
    user_biases, user_vectors = model.get_user_representations()
    scores = user_vectors[users] @ vectors.T + biases[None, :] + user_biases[users, None]
    recommended, _ = top_k(scores.astype(np.float32), k, overwrite=True)
    metrics = evaluate_rankings(recommended, relevant, k, n_items=len(s.new_items))
    name = "lightfm+ids" if identity else "lightfm"
    return {
        "model": name,
        "inputs": "content",
        "note": "WARP on content features"
        + (" and kept items' ids (none for new items)" if identity else " only"),
        "params": {"loss": "warp", "no_components": components, "epochs": epochs},
        **{f"test_{m}": v for m, v in metrics.items()},
        "epochs": epochs,
        "train_seconds": round(train_seconds, 2),
        "scoring_seconds": round(time.perf_counter() - start, 3),
    }
