"""The ``social`` strategy: a user with no usable history but with friends gets what
their friends interacted with.

For every user of the graph (tasks/data/social.py) whose history holds none of the
champion's items, including users who appear only in edges, an item's score is the sum
of the weights of the friends who interacted with it (each friend's history binarised),
and the reason says how many friends did ("liked by 3 of your friends"). A friend's id
is personal data: the reason names friends only when ``score.name_friends`` allows it
(the number of friends named, the weightiest first; default 0, counts only): "liked by
3 of your friends: u00012, u00044". Only what the user has seen and the blocked items
are excluded. The friends' items come first; when
they are fewer than K, the list is filled with the recently popular items (their reason
says so), so every user still gets K rows. Users without such friends keep the
popularity fallback.

The night computes these scores once for all shards (:func:`build_social_scores`, saved
beside the scoring's other shared statistics) and each shard, as each refresh, reads
them (:func:`load_social_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    #: with ``name_friends``: the j-th matrix holds, per row and item, 1 + the position in
    #: ``names`` of the j-th weightiest friend who interacted with the item
    namers: tuple[sp.csr_matrix, ...] = ()
    names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    def rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Each user's row, -1 for a user without one."""
        return self.users.index(np.asarray(user_ids).astype(str))


def build_social_scores(
    graph: pd.DataFrame, interactions: pd.DataFrame, items: IdVocabulary, name_friends: int = 0
) -> SocialScores:
    """The scores of the graph's users without usable history, from ``graph`` (user_id,
    friend_id, weight; a mutual relation stored both ways) and the night's
    ``interactions`` (user_id, item_id) over the champion's ``items``; with
    ``name_friends``, which friends (up to that many per item) the reasons may name."""
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
    out = SocialScores(IdVocabulary.from_sorted(ids), scores[keep], friends[keep], edge_only)
    if name_friends <= 0:
        return out
    namers, names = _namers(weights[keep].tocsr(), history, people, name_friends)
    return replace(out, namers=namers, names=names)


def _namers(
    links: sp.csr_matrix, history: sp.csr_matrix, people: IdVocabulary, n: int
) -> tuple[tuple[sp.csr_matrix, ...], np.ndarray]:
    """For each row of ``links`` (rows x people, the friends' weights) and each item a
    friend interacted with, the first ``n`` such friends, weightiest first (ties by id):
    ``n`` matrices of 1 + positions in the returned names."""
    order: list[int] = []  # people named, in order of first use
    where: dict[int, int] = {}
    cells: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    for r in range(links.shape[0]):
        start, end = links.indptr[r], links.indptr[r + 1]
        friends, weights = links.indices[start:end], links.data[start:end]
        ranked = friends[np.lexsort((people.ids[friends].astype(str), -weights))]
        taken: dict[int, int] = {}
        for f in ranked:
            for item in history.indices[history.indptr[f] : history.indptr[f + 1]]:
                j = taken.get(int(item), 0)
                if j < n:
                    taken[int(item)] = j + 1
                    if int(f) not in where:
                        where[int(f)] = len(order)
                        order.append(int(f))
                    cells[j].append((r, int(item), where[int(f)] + 1))
    shape = (links.shape[0], history.shape[1])
    namers = []
    for part in cells:
        rows, cols, data = (np.array([c[i] for c in part], dtype=np.int64) for i in range(3))
        namers.append(sp.csr_matrix((data.astype(np.float64), (rows, cols)), shape=shape))
    return tuple(namers), people.ids[np.array(order, dtype=np.int64)].astype(object)


def save_social_scores(scores: SocialScores, directory: Path) -> None:
    import json

    parts = [scores.scores, scores.friends, *scores.namers]
    sp.save_npz(directory / SOCIAL_FILE, sp.vstack(parts, format="csr", dtype=np.float64))
    meta = {
        "users": scores.users.ids.astype(str).tolist(),
        "edge_only": list(scores.edge_only),
        "named": len(scores.namers),
        "names": [str(name) for name in scores.names],
    }
    (directory / SOCIAL_USERS_FILE).write_text(json.dumps(meta))


def load_social_scores(directory: Path | str | None) -> SocialScores | None:
    """The scores saved in ``directory``; None when there are none."""
    import json

    if directory is None or not (Path(directory) / SOCIAL_FILE).is_file():
        return None
    folder = Path(directory)
    meta = json.loads((folder / SOCIAL_USERS_FILE).read_text())
    stacked = sp.load_npz(folder / SOCIAL_FILE).tocsr()
    n = len(meta["users"])
    parts = [stacked[i * n : (i + 1) * n] for i in range(2 + int(meta.get("named", 0)))]
    return SocialScores(
        IdVocabulary(np.array(meta["users"], dtype=object)),
        parts[0].astype(np.float32),
        parts[1].astype(np.float32),
        np.array(meta["edge_only"], dtype=object),
        namers=tuple(parts[2:]),
        names=np.array(meta.get("names", []), dtype=object),
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
    namers = [m[rows] for m in scores.namers]
    out = np.full(items.shape, None, dtype=object)
    for r in range(len(rows)):
        row = counts.getrow(r)
        liked = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        for c in np.flatnonzero(items[r] >= 0):
            item = int(items[r, c])
            n = int(liked.get(item, 0))
            if not n:
                out[r, c] = fallback
                continue
            named = [int(m[r, item]) for m in namers]
            who = ", ".join(str(scores.names[i - 1]) for i in named if i > 0)
            out[r, c] = f"liked by {n} of your friends" + (f": {who}" if who else "")
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
