"""The ``social`` strategy: a user without usable history but with friends gets exactly
their friends' items, weighted by the relation, with a reason counting the friends."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from models.vocab import IdVocabulary
from tasks.config import ScoreConfig
from tasks.data.catalog import build_catalog
from tasks.scoring.social import build_social_scores, load_social_scores, save_social_scores
from tasks.scoring.table import write_scores
from tests.tasks.scoring.test_ranking import CATALOG, ITEMS, TRAIN, USERS, FixedScores, events

# f1 saw a, b; f2 saw b, c; u1 saw a. "ghost" saw only an unknown item, "lonely" has no
# friends with history, "new" appears only in the graph.
HISTORY = events(
    [("f1", "a"), ("f1", "b"), ("f2", "b"), ("f2", "c"), ("u1", "a"), ("ghost", "zzz")]
)
GRAPH = pd.DataFrame(
    {
        "user_id": ["ghost", "ghost", "new", "u1", "lonely"],
        "friend_id": ["f1", "f2", "f2", "f1", "nobody"],
        "weight": [1.0, 3.0, 1.0, 1.0, 1.0],
    }
)


def scored(tmp_path, social, extra=None) -> dict[str, pd.DataFrame]:
    model = FixedScores([5, 4, 3, 2, 1, 0]).fit(TRAIN)
    catalog = build_catalog(ITEMS, CATALOG, set())
    path = tmp_path / "part.parquet"
    out = write_scores(
        model,
        USERS,
        ITEMS,
        catalog,
        HISTORY,
        ScoreConfig(k=5, explain=False),
        path,
        {"run_id": "r", "run_date": date(2026, 2, 1), "model_version": "1"},
        social=social,
        extra_users=extra,
    )
    table = pd.read_parquet(path)
    assert out["rows"] == len(table)
    return {u: g.sort_values("rank") for u, g in table.groupby("user_id")}


def friends_items(rows: pd.DataFrame) -> list[str]:
    return rows.loc[rows["reason"].str.startswith("liked by"), "item_id"].tolist()


def test_friends_only_users_get_exactly_their_friends_items(tmp_path) -> None:
    social = build_social_scores(GRAPH, HISTORY, ITEMS)
    assert list(social.users.ids) == ["ghost", "new"]  # u1 has history; lonely's friend none
    assert list(social.edge_only) == ["new"]
    got = scored(tmp_path, social, social.edge_only)
    # ghost: b (f1 + f2: weight 4), c (f2: 3), a (f1: 1) first, then the popular d, e
    # (f is unavailable): K rows, as the table's contract wants
    ghost = got["ghost"]
    assert friends_items(ghost) == ["b", "c", "a"] == ghost["item_id"].tolist()[:3]
    assert set(ghost["strategy"]) == {"social"} and len(ghost) == 5
    assert ghost["reason"].tolist() == [
        "liked by 2 of your friends",
        "liked by 1 of your friends",
        "liked by 1 of your friends",
        "popular in the last 30 days",
        "popular in the last 30 days",
    ]
    np.testing.assert_allclose(ghost["score"].to_numpy()[:3], [4.0, 3.0, 1.0], atol=1e-2)
    # new (only in the graph): exactly f2's items, b and c, before the popular ones
    assert friends_items(got["new"]) == ["b", "c"] == got["new"]["item_id"].tolist()[:2]
    assert set(got["new"]["strategy"]) == {"social"}
    assert set(got["u1"]["strategy"]) == {"personal"}  # history wins over friends
    assert "lonely" not in got  # no interactions, no friend with any: nothing to say


def test_without_a_graph_nothing_changes(tmp_path) -> None:
    got = scored(tmp_path, None)
    assert set(got["ghost"]["strategy"]) == {"fallback"} and "new" not in got


def test_social_scores_round_trip(tmp_path) -> None:
    social = build_social_scores(GRAPH, HISTORY, ITEMS)
    save_social_scores(social, tmp_path)
    loaded = load_social_scores(tmp_path)
    assert loaded is not None and loaded.users == social.users
    assert (loaded.scores != social.scores).nnz == 0 and (loaded.friends != social.friends).nnz == 0
    assert list(loaded.edge_only) == ["new"]
    assert load_social_scores(tmp_path / "none") is None
    assert isinstance(social.users, IdVocabulary)


def test_reasons_name_friends_only_when_allowed(tmp_path) -> None:
    """With ``score.name_friends`` 1, each reason names the weightiest friend who liked
    the item (ghost: f2 weighs 3, f1 1); the names survive the save the shards read."""
    social = build_social_scores(GRAPH, HISTORY, ITEMS, name_friends=1)
    (tmp_path / "saved").mkdir()
    save_social_scores(social, tmp_path / "saved")
    loaded = load_social_scores(tmp_path / "saved")
    assert loaded is not None
    ghost = scored(tmp_path, loaded, loaded.edge_only)["ghost"]
    assert ghost["reason"].tolist()[:3] == [
        "liked by 2 of your friends: f2",
        "liked by 1 of your friends: f2",
        "liked by 1 of your friends: f1",
    ]
    both = build_social_scores(GRAPH, HISTORY, ITEMS, name_friends=2)
    ghost = scored(tmp_path, both, both.edge_only)["ghost"]
    assert ghost["reason"].iloc[0] == "liked by 2 of your friends: f2, f1"
    counts = scored(tmp_path, build_social_scores(GRAPH, HISTORY, ITEMS))["ghost"]
    assert "f1" not in " ".join(counts["reason"]) and "f2" not in " ".join(counts["reason"])
