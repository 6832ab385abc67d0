"""The new-items protocol: how well a model ranks items nobody has interacted with yet.

:func:`split_new_items` holds out a seeded share of the items (default 20%) with ALL
their interactions. Models are fitted on the other ("kept") items: their vocabulary,
their events split per user at random into train and a validation slice (early stopping
and the choice of settings, on kept items only). The item content given to ``fit`` has
the kept items' rows first (row i = kept item i), then the held-out items' rows
(:meth:`NewItemsSplit.item_ids`), as :class:`models.content.ItemContent` lays out items
nobody has seen yet.

Each user who chose a held-out item and has history among the kept items is evaluated:
the candidates are the held-out items only, the relevant ones are those the user chose.
A model that scores items from their content (:class:`models.content.ContentScoring`)
ranks them with ``score_content`` over the held-out rows (:func:`rank_new_items`); any
other model cannot tell them apart and is reported as such. :func:`random_reference`
gives the expected metrics of a random ranking of the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.content import ContentScoring, ItemContent
from models.metrics import evaluate_rankings
from models.ranking import top_k
from models.vocab import IdVocabulary
from tasks.data.snapshot import interactions_matrix
from tasks.data.splits import Split, indexed_events

NEW_ITEMS_SHARE = 0.2
VALID_SHARE = 0.1
RANDOM_SHUFFLES = 20
SCORE_BLOCK = 2048  # users scored at once
NO_CONTENT = "no content: cannot score items it was not fitted on"
TIED_ZERO = (
    "non-personal scores only: every new item scores 0 (no interactions yet), "
    "a tie that ranks nothing"
)


@dataclass(frozen=True)
class NewItemsSplit:
    """``warm``: the kept items' events (train / valid; its ``test`` is empty) over the
    users with kept history and the kept items' vocabulary. ``new_items``: the held-out
    items; ``test``: their events (``user_idx`` in ``warm.users``, ``item_idx`` in
    ``new_items``)."""

    warm: Split
    new_items: IdVocabulary
    test: pd.DataFrame
    share: float
    seed: int

    @property
    def n_kept(self) -> int:
        return len(self.warm.items)

    @property
    def item_ids(self) -> np.ndarray:
        """Every item's raw id in content row order: the kept items, then the held-out."""
        return np.concatenate([self.warm.items.ids, self.new_items.ids])

    def history(self) -> sp.csr_matrix:
        """Users x kept items: every kept-item event (train and valid)."""
        return self.warm.matrix("train", "valid")

    def target(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """The evaluated users (history among kept items, at least one held-out item) and
        their held-out items (rows: those users; columns: ``new_items``)."""
        history = self.history()
        relevant = interactions_matrix(self.test, (len(self.warm.users), len(self.new_items)))
        users = np.flatnonzero((np.diff(history.indptr) > 0) & (np.diff(relevant.indptr) > 0))
        return users, relevant[users]


def split_new_items(
    interactions: pd.DataFrame,
    share: float = NEW_ITEMS_SHARE,
    seed: int = 42,
    valid_share: float = VALID_SHARE,
) -> NewItemsSplit:
    """Hold out ``share`` of the distinct items (chosen with ``seed``, at least one, never
        all) with all their events; the rest split per user at random (``seed``) into train
        and ``valid_share`` validation (at least one event of each user with 3 or more, none
    of a user with fewer). Users with no kept-item event are left out: there is
        nothing to rank new items for them from."""
    if not 0 < share < 1:
        raise ValueError(f"new-items share must be between 0 and 1 (exclusive), got {share}")
    item_ids = np.array(sorted(interactions["item_id"].astype(str).unique()), dtype=object)
    if len(item_ids) < 2:
        raise ValueError(
            f"the new-items protocol needs at least 2 items to hold some out; found {len(item_ids)}"
        )
    n_new = min(max(1, round(share * len(item_ids))), len(item_ids) - 1)
    held = np.zeros(len(item_ids), dtype=bool)
    held[np.random.default_rng(seed).choice(len(item_ids), n_new, replace=False)] = True
    new_items = IdVocabulary.from_sorted(item_ids[held])
    is_new = new_items.index(interactions["item_id"].astype(str)) >= 0
    users, items, frame = indexed_events(interactions[~is_new])
    rng = np.random.default_rng(seed)
    shuffled = frame.assign(_key=rng.random(len(frame))).sort_values(["user_idx", "_key"])
    rank = shuffled.groupby("user_idx").cumcount()
    size = shuffled.groupby("user_idx")["item_idx"].transform("size")
    n_valid = np.where(size >= 3, np.maximum(1, np.round(size * valid_share)), 0)
    in_valid = rank >= size - n_valid
    train, valid = (
        shuffled[mask].drop(columns="_key").sort_values("timestamp", kind="stable")
        for mask in (~in_valid, in_valid)
    )
    held_out = interactions[is_new]
    test = pd.DataFrame(
        {
            "user_idx": users.index(held_out["user_id"].astype(str)),
            "item_idx": new_items.index(held_out["item_id"].astype(str)),
            "timestamp": held_out["timestamp"].to_numpy(),
        }
    )
    test = test[test["user_idx"] >= 0].drop_duplicates(["user_idx", "item_idx"], keep="last")
    empty = frame.iloc[:0]
    warm = Split(
        "new-items",
        users,
        items,
        train.reset_index(drop=True),
        valid.reset_index(drop=True),
        empty.reset_index(drop=True),
    )
    return NewItemsSplit(warm, new_items, test.reset_index(drop=True), share, seed)


def rank_new_items(
    model: Any, users: np.ndarray, history: sp.csr_matrix, content: ItemContent, k: int
) -> tuple[np.ndarray | None, str]:
    """The top-k held-out items per user (indices into ``content``'s rows, the held-out
    items' content) and how they were ranked: ``"content"`` for a
    :class:`ContentScoring` model (``score_content``, ``history`` as in ``score``:
    users x kept items, rows indexed by user); None and why for any other model."""
    if isinstance(model, ContentScoring) and not model.reads_content():
        return None, "no content: fitted without content to read (use_content false?)"
    if isinstance(model, ContentScoring):
        blocks = []
        for start in range(0, len(users), SCORE_BLOCK):
            block = users[start : start + SCORE_BLOCK]
            try:
                scores = model.score_content(block, history, content)
            except NotImplementedError as exc:
                return None, f"no content scoring: {exc}"
            except ValueError as exc:  # e.g. a two_tower fitted with use_content false
                return None, f"cannot score from content: {exc}"
            scores = np.asarray(scores, dtype=np.float32)
            if scores.shape != (len(block), len(content)):
                raise ValueError(
                    f"{type(model).__name__}.score_content gave scores of shape {scores.shape}; "
                    f"expected {(len(block), len(content))} (users x items of the content)"
                )
            blocks.append(top_k(scores, k, overwrite=True)[0])
        return np.concatenate(blocks) if blocks else np.zeros((0, k), np.int64), "content"
    if not getattr(model, "personalized", True) or model.shared_scores() is not None:
        return None, TIED_ZERO
    return None, NO_CONTENT


def random_reference(
    relevant: sp.csr_matrix, k: int, shuffles: int = RANDOM_SHUFFLES, seed: int = 42
) -> dict[str, float]:
    """The metrics of a seeded random ranking of every candidate (``relevant``'s columns)
    for each user, averaged over ``shuffles`` shuffles: what a model that cannot tell the
    candidates apart is expected to score."""
    relevant = sp.csr_matrix(relevant)
    n_users, n_items = relevant.shape
    rng = np.random.default_rng(seed)
    totals: dict[str, float] = {}
    for _ in range(shuffles):
        order = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
        if order.shape[1] < k:
            order = np.hstack([order, np.full((n_users, k - order.shape[1]), -1)])
        metrics = evaluate_rankings(order, relevant, k, n_items=n_items)
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + float(value)
    out = {name: value / shuffles for name, value in totals.items()}
    out["n_users"] = round(out.get("n_users", 0.0))
    return out
