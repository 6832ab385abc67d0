"""New items in the night's lists: catalogue items nobody has interacted with yet.

No collaborative model can rank an item without interactions; a model that reads the
items' content can (:class:`models.content.ContentScoring`). When the catalogue has such
items and the night has a content-aware model, the last ``score.new_items_share`` of each
user's K rows go to the new items that model scores highest for the user, strategy
``new_item``. The rest of the list is the champion's, unchanged and in its order.

Which model: the champion when it reads content; else the content-aware model (fitted
with content) with the best hold-out NDCG among tonight's (its registered version is named
in its rows' ``model_name`` / ``model_version``). Ranks order a list; ``score`` descends
with rank within a user's rows of one strategy (the two models' scores may differ in
scale).

A row's reason names the item of the user's history whose content looks most like the new
item (by the model's content vectors) and the contents they share ("new: genres and
description like Heat (1995)"); without a history, the contents the model read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.content import ID_KINDS, ContentScoring, ItemContent
from models.ranking import top_k
from models.vocab import IdVocabulary

NEW_ITEMS_FILE = "new_items.json"
STRATEGY = "new_item"
#: two numbers alike within this many standard deviations; two places within this angle
#: (about 50 km on the Earth); two vectors above this cosine
NUMERIC_CLOSE, PLACE_COSINE, VECTOR_COSINE = 0.5, math.cos(50 / 6371), 0.8
#: two texts alike from this Jaccard index of their words; a reason names this many contents
WORDS_ALIKE, NAMED = 0.2, 2


def is_content_model(name: str) -> bool:
    """The registered model ``name`` scores items from their content alone."""
    from models import MODEL_CLASSES

    cls = MODEL_CLASSES.get(name)
    return cls is not None and issubclass(cls, ContentScoring)


def slots(k: int, share: float) -> int:
    """How many of a list's ``k`` rows go to new items (at least one when ``share`` > 0)."""
    return 0 if share <= 0 else min(k, max(1, round(k * share)))


def content_candidates(
    champion: dict[str, str], candidates: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The models that may score new items, in order: ``champion`` (name, version, run_id)
    when its class reads content, then the content-aware candidates (name, version,
    run_id, metrics), best hold-out NDCG first."""
    out = [champion] if is_content_model(champion["name"]) else []
    aware = [c for c in candidates if is_content_model(c["name"])]
    aware.sort(key=lambda c: -_ndcg(c.get("metrics", {})))
    out += [{key: str(c[key]) for key in ("name", "version", "run_id")} for c in aware]
    return [c for n, c in enumerate(out) if c["version"] not in {o["version"] for o in out[:n]}]


def _ndcg(metrics: dict[str, float]) -> float:
    """The hold-out NDCG@K among a model's metrics (``ndcg@10``), -inf without one."""
    found = [v for key, v in metrics.items() if key.startswith("ndcg@")]
    return float(found[0]) if found else float("-inf")


def new_item_rows(
    content_ids: np.ndarray, known: np.ndarray, seen: set[str], blocked: set[str]
) -> np.ndarray:
    """Rows of the content features that are new items: outside the snapshot's vocabulary
    (``known`` false), with no event today (``seen``), not denied or unavailable."""
    ids = np.asarray(content_ids, dtype=object).astype(str)
    keep = ~np.asarray(known, dtype=bool)
    if seen:
        keep &= ~np.isin(ids, list(seen))
    if blocked:
        keep &= ~np.isin(ids, list(blocked))
    return np.flatnonzero(keep)


def write_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """``new_items.json`` beside the scored parts: the model and the items (the output
    check reads the item ids)."""
    (Path(out_dir) / NEW_ITEMS_FILE).write_text(json.dumps(plan, indent=2), encoding="utf-8")


def read_plan(out_dir: Path | str) -> dict[str, Any] | None:
    path = Path(out_dir) / NEW_ITEMS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def load_new_items(
    workspace_root: str, registered_name: str, plan: dict[str, Any], items_path: str | None
) -> NewItems:
    """The :class:`NewItems` of a night's plan (``new_items.json``): its content model
    (a registered version), the snapshot's content features, the catalogue's titles."""
    from tasks import tracking
    from tasks.data.content_features import content_item_ids, item_content

    model = tracking.load_model_version(
        workspace_root, registered_name, plan["version"], plan["run_id"]
    )
    content = item_content(plan["features_dir"])
    if content is None:
        raise RuntimeError(
            f"scoring: the content features in {plan['features_dir']} are gone; "
            "run the night again from the features stage"
        )
    titles: dict[str, str] = {}
    if items_path:
        catalog = pd.read_parquet(items_path)
        if "title" in catalog:
            named = catalog.dropna(subset=["title"])
            ids, names = named["item_id"].astype(str), named["title"].astype(str)
            titles = dict(zip(ids, names, strict=True))
    return NewItems(
        model=model.model,
        items=model.items,
        content=content,
        content_ids=content_item_ids(plan["features_dir"]).astype(str),
        new_rows=np.asarray(plan["rows"], dtype=np.int64),
        model_name=plan["name"],
        model_version=plan["version"],
        slots=int(plan["slots"]),
        titles=titles,
    )


@dataclass
class NewItems:
    """What a shard needs to give its users' lists new items."""

    model: Any  # the content-aware model (ContentScoring)
    items: IdVocabulary  # its items: the space of the users' histories
    content: ItemContent  # the content features' rows (all of them)
    content_ids: np.ndarray  # the item id of each row of ``content``
    new_rows: np.ndarray  # the rows of ``content`` that are new items
    model_name: str
    model_version: str
    slots: int
    titles: dict[str, str]

    @property
    def new_ids(self) -> np.ndarray:
        return self.content_ids[self.new_rows]

    @cached_property
    def new_vectors(self) -> np.ndarray:
        """The new items' content vectors, encoded once for every block of users."""
        return np.asarray(self.model.content_vectors(self.content.rows(self.new_rows)))

    def content_rows(self, item_ids: np.ndarray) -> np.ndarray:
        """The content row of each item id (-1 without content)."""
        index = pd.Index(self.content_ids.astype(str))
        return np.asarray(index.get_indexer(np.asarray(item_ids, dtype=str)), dtype=np.int64)

    def histories(
        self, interactions: pd.DataFrame
    ) -> tuple[IdVocabulary, sp.csr_matrix, sp.csr_matrix]:
        """The users of ``interactions``, their histories over the model's items and the
        new items each has interacted with since the night (a refresh's events), which
        their lists must not hold."""
        users = IdVocabulary(interactions["user_id"].astype(str))
        u = users.index(interactions["user_id"].astype(str))
        ids = interactions["item_id"].astype(str)
        i = self.items.index(ids)
        j = np.asarray(pd.Index(self.new_ids.astype(str)).get_indexer(ids), dtype=np.int64)
        return (
            users,
            _binary(u, i, (len(users), len(self.items))),
            _binary(u, j, (len(users), len(self.new_rows))),
        )


def _binary(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A binary CSR matrix of the (row, column) pairs whose column is not -1."""
    ok = columns >= 0
    matrix = sp.csr_matrix(
        (np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], columns[ok])), shape=shape
    )
    matrix.data[:] = 1.0
    return matrix


def with_new_items(
    table: pd.DataFrame,
    new: NewItems,
    users: IdVocabulary,
    history: sp.csr_matrix,
    k: int,
    seen: sp.csr_matrix | None = None,
) -> pd.DataFrame:
    """``table`` (the published columns, K rows per user) with each user's last
    ``new.slots`` rows replaced by the new items the content model ranks highest, never
    one the user has interacted with (``seen``: users x new items, as ``histories``)."""
    if new.slots == 0 or len(new.new_rows) == 0 or table.empty:
        return table
    user_ids = pd.unique(table["user_id"].astype(str))
    rows = users.index(user_ids)
    known = (rows >= 0).astype(np.float32)  # users without events get an empty history
    own = sp.csr_matrix(sp.diags(known) @ history[np.maximum(rows, 0)])
    own.eliminate_zeros()
    own.sort_indices()
    scores = np.array(
        new.model.score_vectors(np.arange(len(user_ids)), own, new.new_vectors),
        dtype=np.float32,
    )
    exclude = None
    if seen is not None and seen.nnz:
        exclude = sp.csr_matrix(sp.diags(known) @ seen[np.maximum(rows, 0)])
    n = min(new.slots, len(new.new_rows))
    chosen, top = top_k(scores, n, exclude=exclude)
    # a user who has seen nearly every new item gets fewer: the champion keeps those ranks
    count = (chosen >= 0).sum(axis=1)
    first_new = np.repeat(
        k - count + 1, table.groupby("user_id", sort=False).size().loc[user_ids].to_numpy()
    )
    ordered = table.set_index("user_id").loc[user_ids].reset_index()
    keep = ordered[ordered["rank"].to_numpy() < first_new]
    reasons = _reasons(new, own, chosen)
    first = table.drop_duplicates("user_id").set_index("user_id")
    valid = chosen >= 0
    slot = np.cumsum(valid, axis=1) - 1  # 0.. within a user's new rows
    user_of = np.repeat(np.arange(len(user_ids)), n).reshape(chosen.shape)
    added = pd.DataFrame(
        {
            "run_id": first.loc[user_ids, "run_id"].to_numpy()[user_of[valid]],
            "run_date": first.loc[user_ids, "run_date"].to_numpy()[user_of[valid]],
            "user_id": user_ids[user_of[valid]],
            "rank": (k - count)[user_of[valid]] + slot[valid] + 1,
            "item_id": new.new_ids[chosen[valid]],
            "score": top[valid].astype("float64"),
            "model_name": new.model_name,
            "model_version": new.model_version,
            "strategy": STRATEGY,
            "reason": reasons[valid],
        }
    ).astype({c: table[c].dtype for c in table.columns})
    out = pd.concat([keep[table.columns], added], ignore_index=True)
    order = {u: n for n, u in enumerate(user_ids)}
    out = out.assign(_order=out["user_id"].map(order)).sort_values(
        ["_order", "rank"], kind="stable"
    )
    return out.drop(columns="_order").reset_index(drop=True)


def _reasons(new: NewItems, history: sp.csr_matrix, chosen: np.ndarray) -> np.ndarray:
    """Per (user, chosen new item): the most alike item of the user's history, by content."""
    new_vectors = _unit(new.new_vectors)
    liked = np.unique(history.indices)
    liked_rows = new.content_rows(new.items.ids[liked])
    with_content = liked_rows >= 0
    liked, liked_rows = liked[with_content], liked_rows[with_content]
    liked_vectors = (
        _unit(new.model.content_vectors(new.content.rows(liked_rows)))
        if len(liked_rows)
        else np.zeros((0, new_vectors.shape[1]), dtype=np.float32)
    )
    column = {int(item): n for n, item in enumerate(liked)}
    out = np.empty(chosen.shape, dtype=object)
    for user in range(chosen.shape[0]):
        items = history.indices[history.indptr[user] : history.indptr[user + 1]]
        mine = [column[int(i)] for i in items if int(i) in column]
        for slot, pick in enumerate(chosen[user]):
            if pick < 0:
                continue
            row = new.new_rows[pick]
            if not mine:
                out[user, slot] = f"new: {_names(new.content, row, None)} suit most tastes"
                continue
            sims = liked_vectors[mine] @ new_vectors[pick]
            near = liked_rows[mine[int(np.argmax(sims))]]
            near_id = str(new.content_ids[near])
            title = new.titles.get(near_id, near_id)
            out[user, slot] = f"new: {_names(new.content, row, near)} like {title}"
    return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _names(content: ItemContent, row: int, other: int | None) -> str:
    """The (at most ``NAMED``) contents the new item at ``row`` shares most with the item at
    ``other``; all that it has, when none is shared or there is no other item."""
    has = [n for n in content.names if content.masks[n][row]]
    alike = [] if other is None else [(_alike(content, n, row, other), n) for n in has]
    shared = [n for sim, n in sorted(alike, key=lambda t: -t[0]) if sim > 0][:NAMED]
    names = [n.replace("_", " ") for n in (shared or has)] or ["content"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _alike(content: ItemContent, name: str, a: int, b: int) -> float:
    """How much the two items' ``name`` contents agree, 0 when not enough to name: the
    Jaccard index of their ids (words: at least ``WORDS_ALIKE``; categories: any shared),
    numbers within half a deviation, places within about 50 km, vectors of cosine above
    0.8. Images are compared by the model's vectors, not by a rule: never named here."""
    if not content.masks[name][b]:
        return 0.0
    kind, values = content.kinds[name], content.values[name]
    if kind in ID_KINDS:
        ids_a = {int(v) for v in np.atleast_1d(values[a]) if v > 1}
        ids_b = {int(v) for v in np.atleast_1d(values[b]) if v > 1}
        jaccard = len(ids_a & ids_b) / max(len(ids_a | ids_b), 1)
        return jaccard if kind != "text" or jaccard >= WORDS_ALIKE else 0.0
    if kind == "numeric":
        gap = abs(float(values[a]) - float(values[b]))
        return 1.0 - gap / NUMERIC_CLOSE if gap <= NUMERIC_CLOSE else 0.0
    if kind in ("coordinates", "vector"):
        cosine = float(np.dot(values[a], values[b]))
        return (
            cosine if cosine >= (PLACE_COSINE if kind == "coordinates" else VECTOR_COSINE) else 0.0
        )
    return 0.0
