"""New items in the lists: the last rows of each list go to the catalogue's items nobody
has interacted with, ranked by a content-aware model, with a reason naming the content."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import scipy.sparse as sp

from expectations.recommendations import with_checks
from models.content import ContentScoring, ItemContent
from models.vocab import IdVocabulary
from tasks.scoring.new_items import (
    NewItems,
    content_candidates,
    new_item_rows,
    slots,
    with_new_items,
)

# six items with a genre (category ids 2 = "comedy", 3 = "horror"); items 0-3 known,
# 4 and 5 new; item 4 is a comedy, item 5 a horror film
GENRE = np.array([2, 2, 3, 3, 2, 3], dtype=np.int32)
CONTENT = ItemContent(
    kinds={"genre": "category"},
    values={"genre": GENRE},
    masks={"genre": np.ones(6, dtype=bool)},
    sizes={"genre": 4},
)
IDS = np.array(["c1", "c2", "h1", "h2", "c-new", "h-new"], dtype=object)


class GenreModel(ContentScoring):
    """Scores an item by the share of the user's history in its genre (known answer)."""

    def content_vectors(self, content: ItemContent) -> np.ndarray:
        genre = content.values["genre"]
        return np.stack([genre == 2, genre == 3], axis=1).astype(np.float32)

    def score_vectors(
        self, users: np.ndarray, history: sp.csr_matrix | None, vectors: np.ndarray
    ) -> np.ndarray:
        assert history is not None
        mine = np.asarray(history @ self.content_vectors(CONTENT.rows(slice(0, 4))))
        share = mine / np.maximum(mine.sum(axis=1, keepdims=True), 1)
        return share @ vectors.T + 0.01  # no history: ties, low


def _new_items(share_slots: int = 1) -> NewItems:
    items = IdVocabulary(IDS[:4].astype(str))
    return NewItems(
        model=GenreModel(),
        items=items,
        content=CONTENT,
        content_ids=IDS.astype(str),
        new_rows=np.array([4, 5]),
        model_name="content_tower",
        model_version="3",
        slots=share_slots,
        titles={"c1": "Laughs (1990)", "h1": "Screams (1985)"},
    )


def _table(users: list[str], k: int) -> pd.DataFrame:
    rows = []
    for user in users:
        for rank in range(1, k + 1):
            rows.append((user, rank, f"x{rank}", 10.0 - rank))
    frame = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
    frame.insert(0, "run_date", pd.Series([date(2026, 1, 1)] * len(frame)))
    frame.insert(0, "run_id", "run-1")
    frame["model_name"], frame["model_version"] = "ease", "2"
    frame["strategy"], frame["reason"] = "personal", None
    return frame.astype({"user_id": "str", "item_id": "str", "reason": "str"})


def test_each_list_ends_with_the_new_items_its_user_would_like() -> None:
    new = _new_items(share_slots=1)
    events = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["c1", "c2", "h1"]})
    users, history, seen = new.histories(events)
    out = with_new_items(_table(["u1", "u2", "u3"], k=3), new, users, history, k=3, seen=seen)
    assert list(out.groupby("user_id").size()) == [3, 3, 3]
    last = out[out["rank"] == 3].set_index("user_id")
    assert last.loc["u1", "item_id"] == "c-new"  # a comedy fan gets the new comedy
    assert last.loc["u2", "item_id"] == "h-new"  # a horror fan the new horror film
    assert (last["strategy"] == "new_item").all()
    assert (last["model_name"] == "content_tower").all() and (last["model_version"] == "3").all()
    assert last.loc["u1", "reason"] == "new: genre like Laughs (1990)"
    assert last.loc["u2", "reason"] == "new: genre like Screams (1985)"
    assert last.loc["u3", "reason"] == "new: genre suit most tastes"  # no history
    kept = out[out["rank"] < 3]
    assert (kept["strategy"] == "personal").all() and list(kept["item_id"][:2]) == ["x1", "x2"]


def test_the_output_suite_accepts_new_items_and_only_new_items() -> None:
    new = _new_items(share_slots=2)
    events = pd.DataFrame({"user_id": ["u1"], "item_id": ["c1"]})
    users, history, seen = new.histories(events)
    out = with_new_items(_table(["u1"], k=4), new, users, history, k=4, seen=seen)
    assert list(out["strategy"]) == ["personal", "personal", "new_item", "new_item"]
    # the new items' scores (another model's scale) may be above the personal ones
    checks = with_checks(out, events, {"x1", "x2", "x3", "x4"}, set(), None, {"c-new", "h-new"})
    assert checks["item_known"].all() and checks["new_item_ok"].all()
    assert (checks["score_drop"] >= 0).all()
    faked = out.assign(item_id=["x1", "x2", "x3", "c-new"])  # x3 is no new item
    checks = with_checks(faked, events, {"x1", "x2", "x3", "x4"}, set(), None, {"c-new"})
    assert list(checks["new_item_ok"]) == [True, True, False, True]


def test_new_items_are_outside_the_vocabulary_unseen_and_not_blocked() -> None:
    known = np.array([True, True, True, True, False, False, False])
    ids = np.array(["a", "b", "c", "d", "new1", "new2", "gone"], dtype=object)
    assert list(new_item_rows(ids, known, seen=set(), blocked={"gone"})) == [4, 5]
    assert list(new_item_rows(ids, known, seen={"new2"}, blocked=set())) == [4, 6]


def test_slots_and_the_model_chosen() -> None:
    assert [slots(10, s) for s in (0.0, 0.01, 0.2, 0.99)] == [0, 1, 2, 10]
    champion = {"name": "ease", "version": "4", "run_id": "r4"}
    candidates = [
        {"name": "popularity", "version": "5", "run_id": "r5", "metrics": {"ndcg@10": 0.9}},
        {"name": "ease", "version": "6", "run_id": "r6", "metrics": {"ndcg@10": 0.5}},
    ]
    assert content_candidates(champion, candidates) == []  # none reads content
    candidates += [
        {"name": "hybrid_tower", "version": "7", "run_id": "r7", "metrics": {"ndcg@10": 0.4}},
        {"name": "content_tower", "version": "8", "run_id": "r8", "metrics": {"ndcg@10": 0.6}},
    ]
    order = content_candidates(champion, candidates)
    assert [c["version"] for c in order] == ["8", "7"]  # the better first
    champion = {"name": "hybrid_tower", "version": "7", "run_id": "r7"}
    order = content_candidates(champion, candidates)
    assert [c["version"] for c in order] == ["7", "8"]  # the champion first, once


def test_histories_are_in_the_models_item_space() -> None:
    new = _new_items()
    events = pd.DataFrame({"user_id": ["u9", "u9"], "item_id": ["h2", "unknown"]})
    users, history, seen = new.histories(events)
    assert list(users.ids) == ["u9"]
    assert sp.issparse(history) and history.shape == (1, 4) and history[0, 3] == 1.0
    assert seen.shape == (1, 2) and seen.nnz == 0


def test_a_new_item_the_user_has_since_chosen_is_never_offered_back() -> None:
    """A refresh's events may hold a new item: that user's list offers the next best one,
    and a user who has chosen every new item keeps the champion's rows."""
    new = _new_items(share_slots=1)
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2", "u2"],
            "item_id": ["c1", "c2", "c-new", "h1", "c-new", "h-new"],
        }
    )
    users, history, seen = new.histories(events)
    assert seen.shape == (2, 2) and seen.nnz == 3
    out = with_new_items(_table(["u1", "u2"], k=3), new, users, history, k=3, seen=seen)
    last = out[out["rank"] == 3].set_index("user_id")
    assert last.loc["u1", "item_id"] == "h-new" and last.loc["u1", "strategy"] == "new_item"
    assert last.loc["u2", "item_id"] == "x3" and last.loc["u2", "strategy"] == "personal"
    assert list(out.groupby("user_id").size()) == [3, 3]
