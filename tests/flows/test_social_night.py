"""A night on the user's files without timestamps plus a friends graph: it holds out at
random, says so once, validates and keeps the graph, and publishes ``social`` rows for a
user who has friends and no history (the direct step: no Prefect flow run); a refresh
gives that user ``social`` rows again."""

from __future__ import annotations

import logging
from datetime import date

import pytest

RUN_DATE = date(2026, 3, 2)
N_USERS, N_ITEMS = 60, 12


def write_data(folder) -> None:
    """Users u0..u59 check in at a few of twelve venues (no time); "newbie" has no
    check-in and two friends, u1 (p1, p2) and u2 (p2, p3); one edge is a self-loop."""
    lines = ["user_id\tpoi_id\tcheckins"]
    for u in range(N_USERS):
        venues = {(u + j * 7) % N_ITEMS for j in range(4)} if u > 2 else set()
        venues |= {1: {1, 2}, 2: {2, 3}}.get(u, set())
        lines += [f"u{u}\tp{v}\t{1 + (u + v) % 3}" for v in sorted(venues or {0})]
    (folder / "checkins.tsv").write_text("\n".join(lines) + "\n")
    edges = ["user_id\tfriend_id", "newbie\tu1", "u2\tnewbie", "u3\tu4", "u5\tu5"]
    (folder / "friends.tsv").write_text("\n".join(edges) + "\n")


@pytest.fixture(scope="module")
def night(make_config, tmp_path_factory) -> tuple:
    from flows.night import Night
    from flows.nightly import run_stages

    root = tmp_path_factory.mktemp("social")
    data = root / "data"
    data.mkdir()
    write_data(data)
    config = make_config(
        root / "ws",
        ingest={
            "source": "files",
            "files": {
                "path": str(data / "checkins.tsv"),
                "item_col": "poi_id",
                "value_col": "checkins",
                "timestamp_col": "none",
            },
            "social": {"path": str(data / "friends.tsv")},
        },
        train={"models": ["popularity", "item_knn"]},
        validate={"max_edge_quarantine_share": 0.5},  # one bad edge in four
        refresh={"path": str(root / "landing")},
    )
    (root / "landing").mkdir()
    night = Night.open(config, RUN_DATE, False, "social-1", logging.getLogger("social-night"))
    return config, run_stages(night)


def test_a_night_without_time_says_what_it_does(night, capsys) -> None:
    from flows.cli.summary import print_summary

    _, out = night
    assert out["status"] == "COMPLETED"
    assert out["without_time"].startswith("no timestamps in the source")
    assert out["features"]["holdout"]["strategy"] == "random"
    assert out["ingest"]["timed"] is False
    print_summary(out)
    printed = capsys.readouterr().out.splitlines()
    assert [line for line in printed if "no timestamps" in line] == ["  " + out["without_time"]]
    assert not any("data age" in line for line in printed)


def test_the_graph_is_validated_and_kept_beside_the_features(night) -> None:
    import pandas as pd

    from tasks.storage.workspace import Workspace

    config, out = night
    edges = out["validation"]["tables"]["edges"]
    assert (edges["rows_read"], edges["rows_accepted"]) == (4, 3)
    assert edges["quarantined_by_reason"] == {"self-loop (user = friend)": 1}
    assert edges["users_without_interactions"] == 1  # newbie
    features = Workspace.at(config.workspace).features(RUN_DATE)
    graph = pd.read_parquet(features / "social.parquet")
    assert len(graph) == 6  # three mutual friendships, stored both ways
    assert pd.read_parquet(features / "social_users.parquet")["user_id"].tolist() == ["newbie"]
    assert out["features"]["social"]["edge_only_users"] == 1


def test_a_friends_only_user_gets_social_rows(night) -> None:
    from tasks.publishing.stores import read_lake_table
    from tasks.storage.workspace import Workspace

    config, out = night
    recs = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    newbie = recs[recs["user_id"] == "newbie"].sort_values("rank")
    assert set(newbie["strategy"]) == {"social"} and len(newbie) == 5
    liked = newbie[newbie["reason"].str.startswith("liked by")]
    # exactly the friends' venues first: p2 (both friends), then p1 and p3 (one each)
    assert liked["item_id"].tolist()[0] == "p2"
    assert set(liked["item_id"]) == {"p1", "p2", "p3"}
    assert liked["reason"].tolist()[0] == "liked by 2 of your friends"
    assert out["scoring"]["users_by_strategy"]["social"] == 1


def test_the_refresh_keeps_a_friends_only_user_social(night) -> None:
    from tasks.publishing.stores import read_lake_table
    from tasks.refresh.run import run_refresh
    from tasks.storage.workspace import Workspace

    config, _ = night
    drop = config.refresh.path / "drop.tsv"
    drop.write_text("user_id\tpoi_id\tcheckins\nnewbie\tp99\t1\n")  # a venue nobody knows
    out = run_refresh(config, "social-refresh", today=RUN_DATE)
    assert out["status"] == "published", out
    assert out["users_by_strategy"] == {"social": 1}
    recs = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    newbie = recs[recs["user_id"] == "newbie"].sort_values("rank")
    assert set(newbie["strategy"]) == {"social"} and newbie["item_id"].iloc[0] == "p2"
    assert newbie["reason"].iloc[0] == "liked by 2 of your friends"


def test_the_refresh_reads_new_relations(night) -> None:
    """A user who only gained friends since the night ("later", friends with u1) is
    refreshed without any new event, from the friends' venues; the next refresh finds
    nothing new, since its graph is the one the rows were scored with."""
    from tasks.publishing.stores import read_lake_table
    from tasks.refresh.run import run_refresh
    from tasks.storage.workspace import Workspace

    config, _ = night
    friends = config.ingest.social.path
    friends.write_text(friends.read_text() + "later\tu1\nlater\tlater\n")
    out = run_refresh(config, "social-edges", today=RUN_DATE)
    assert out["status"] == "published", out
    assert out["events"] == 0
    assert out["edges"]["users_changed"] == 2  # later, and u1 both ways (mutual)
    assert (
        out["edges"]["compared_with"] == "the last refresh's graph"
        or out["edges"]["compared_with"] == "the night's graph"
    )
    assert "2 self-loop" in out["edges"]["accounting"]
    recs = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    later = recs[recs["user_id"] == "later"].sort_values("rank")
    assert set(later["strategy"]) == {"social"}
    assert set(later["item_id"].iloc[:2]) == {"p1", "p2"}  # u1's venues
    assert later["reason"].iloc[0] == "liked by 1 of your friends"
    again = run_refresh(config, "social-edges-again", today=RUN_DATE)
    assert again["status"] == "nothing new", again
    assert again["edges"]["users_changed"] == 0
    assert again["edges"]["compared_with"] == "the last refresh's graph"


def test_the_refresh_maps_a_drops_columns_from_its_options(night) -> None:
    """A drop whose columns are named otherwise than the night's files is read with the
    refresh's column options (``recpipe refresh --user-col ...``: the night's mapping is
    the default)."""
    from flows.cli.options import REFRESH_SOURCE_OPTIONS, overrides
    from tasks.refresh.run import run_refresh

    config, _ = night
    names = {p.name for p in REFRESH_SOURCE_OPTIONS}
    assert {"user_col", "item_col", "timestamp_col", "social_path"} <= names
    assert "source" not in names and "path" not in names
    options = {"user_col": "who", "item_col": "where", "value_col": "n", "delimiter": "tab"}
    files = overrides(None, options)["ingest"]["files"]
    assert files == {"user_col": "who", "item_col": "where", "value_col": "n", "delimiter": "\t"}
    mapped = config.model_copy(
        update={
            "ingest": config.ingest.model_copy(
                update={"files": config.ingest.files.model_copy(update=files)}
            )
        }
    )
    (config.refresh.path / "other.tsv").write_text("who\twhere\tn\nu5\tp4\t1\n")
    out = run_refresh(mapped, "social-columns", today=RUN_DATE)
    assert out["status"] == "published", out
    assert out["events"] == 1 and out["validation"]["rows_accepted"] == 1
