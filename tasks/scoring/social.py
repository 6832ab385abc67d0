"""The ``social`` strategy: a user with no usable history but with friends gets what
their friends interacted with.

For every user of the graph (tasks/data/social.py) whose history holds none of the
champion's items, including users who appear only in edges, an item's score is the sum
of the weights of the friends who interacted with it (each friend's history binarised),
and the reason says how many friends did ("liked by 3 of your friends"). Only what the
user has seen and the blocked items are excluded. The friends' items come first; when
they are fewer than K, the list is filled with the recently popular items (their reason
says so), so every user still gets K rows. Users without such friends keep the
popularity fallback.

The night computes these scores once for all shards (:func:`build_social_scores`, saved
beside the scoring's other shared statistics) and each shard, as each refresh, reads
them (:func:`load_social_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.scoring.inputs import ScoringInputs

SOCIAL_FILE = "social_scores.npz"
SOCIAL_USERS_FILE = "social_users.json"


@dataclass(frozen=True)
class SocialScores:
    """Per user (``users``, raw ids of the rows): friends' weights per champion item
    (``scores``) and how many friends (``friends``); ``edge_only``: the users among them
    with no interactions at all (scored beside the interaction users)."""

    users: IdVocabulary
    scores: sp.csr_matrix
    friends: sp.csr_matrix
    edge_only: np.ndarray

    def rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Each user's row, -1 for a user without one."""
        return self.users.index(np.asarray(user_ids).astype(str))


def build_social_scores(
    graph: pd.DataFrame, interactions: pd.DataFrame, items: IdVocabulary
) -> SocialScores:
    """The scores of the graph's users without usable history, from ``graph`` (user_id,
    friend_id, weight; a mutual relation stored both ways) and the night's
    ``interactions`` (user_id, item_id) over the champion's ``items``."""
    events = interactions[["user_id", "item_id"]].astype("str")
    people = IdVocabulary(events["user_id"])
    i = items.index(events["item_id"].to_numpy())
    u = people.index(events["user_id"].to_numpy())
    known = i >= 0
    history = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (u[known], i[known])),
        shape=(len(people), len(items)),
    )
    history.data[:] = 1.0  # binarised: a friend's repeated events count once
    usable = np.diff(history.indptr) > 0
    links = graph[["user_id", "friend_id", "weight"]].astype({"user_id": "str", "friend_id": "str"})
    own = people.index(links["user_id"].to_numpy())
    without = (own < 0) | ~usable[np.maximum(own, 0)]
    friend = people.index(links["friend_id"].to_numpy())
    links = links[without & (friend >= 0)]
    friend = people.index(links["friend_id"].to_numpy())
    candidates = IdVocabulary(links["user_id"])
    rows = candidates.index(links["user_id"].to_numpy())
    shape = (len(candidates), len(people))
    weights = sp.csr_matrix((links["weight"].to_numpy(np.float32), (rows, friend)), shape=shape)
    ones = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, friend)), shape=shape)
    ones.data[:] = 1.0
    scores, friends = (weights @ history).tocsr(), (ones @ history).tocsr()
    scores.eliminate_zeros()
    keep = np.flatnonzero(np.diff(scores.indptr) > 0)
    ids = candidates.ids[keep]
    edge_only = ids[people.index(ids) < 0].astype(object)
    return SocialScores(IdVocabulary.from_sorted(ids), scores[keep], friends[keep], edge_only)


def save_social_scores(scores: SocialScores, directory: Path) -> None:
    import json

    sp.save_npz(directory / SOCIAL_FILE, sp.vstack([scores.scores, scores.friends]).tocsr())
    meta = {"users": scores.users.ids.astype(str).tolist(), "edge_only": list(scores.edge_only)}
    (directory / SOCIAL_USERS_FILE).write_text(json.dumps(meta))


def load_social_scores(directory: Path | str | None) -> SocialScores | None:
    """The scores saved in ``directory``; None when there are none."""
    import json

    if directory is None or not (Path(directory) / SOCIAL_FILE).is_file():
        return None
    folder = Path(directory)
    meta = json.loads((folder / SOCIAL_USERS_FILE).read_text())
    both = sp.load_npz(folder / SOCIAL_FILE).tocsr()
    n = len(meta["users"])
    return SocialScores(
        IdVocabulary(np.array(meta["users"], dtype=object)),
        both[:n],
        both[n:],
        np.array(meta["edge_only"], dtype=object),
    )


def social_block_scores(
    scores: SocialScores, rows: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
    """Dense scores of the users at ``rows`` of ``scores``: the friends' weights per item
    plus a small recent-popularity tie-breaker, so the friends' items come first and a
    list that needs more than they have is filled with the popular ones."""
    tie = popularity / (popularity.max(initial=0) + 1.0) * 1e-3
    return np.asarray(scores.scores[rows].todense(), dtype=np.float32) + tie.astype(np.float32)


def social_reasons(
    scores: SocialScores, rows: np.ndarray, items: np.ndarray, fallback: str
) -> np.ndarray:
    """ "liked by N of your friends" for each chosen item a friend had, ``fallback`` for
    the others (None where no item was chosen)."""
    counts = scores.friends[rows]
    out = np.full(items.shape, None, dtype=object)
    for r in range(len(rows)):
        row = counts.getrow(r)
        liked = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        for c in np.flatnonzero(items[r] >= 0):
            n = int(liked.get(int(items[r, c]), 0))
            out[r, c] = f"liked by {n} of your friends" if n else fallback
    return out


def with_users(inputs: ScoringInputs, ids: np.ndarray) -> ScoringInputs:
    """``inputs`` with the users ``ids`` (those not in it yet) added, without history:
    users who appear only in the graph."""
    assert inputs.users is not None
    old = inputs.users.ids
    new = np.asarray(ids, dtype=object)
    new = new[inputs.users.index(new.astype(str)) < 0]
    if not len(new):
        return inputs
    users = IdVocabulary(np.concatenate([old.astype(object), new]))
    where = users.index(old)
    move = sp.csr_matrix(
        (np.ones(len(old), np.float32), (where, np.arange(len(old)))), shape=(len(users), len(old))
    )
    in_model = np.full(len(users), -1, dtype=inputs.in_model.dtype)
    in_model[where] = inputs.in_model
    positive = None if inputs.positive is None else (move @ inputs.positive).tocsr()
    return replace(
        inputs,
        users=users,
        history=(move @ inputs.history).tocsr(),
        in_model=in_model,
        positive=positive,
    )
