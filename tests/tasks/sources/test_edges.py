"""The relations source: edges files mapped onto the edges contract, written at ingest;
data without timestamps stamped with the ingest date."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from flows.cli.options import overrides
from tasks.config import FilesConfig, IngestConfig, PipelineConfig, SocialConfig
from tasks.errors import DataError
from tasks.ingest import ingest
from tasks.sources.edges import read_edges

DAY = date(2024, 6, 1)


def test_edges_are_mapped_like_interactions(tmp_path) -> None:
    path = tmp_path / "friends.tsv"
    path.write_text("a\tb\tw\n1\t 2 \t0.5\n3.0\t4\tx\n")
    config = SocialConfig(path=path, user_col="a", friend_col="b", weight_col="w")
    edges, stats = read_edges(config)
    # "<int>.0" ids lose the ".0", as the interactions' do
    assert edges["user_id"].tolist() == ["1", "3"]
    assert edges["friend_id"].tolist() == ["2", "4"]
    assert edges["weight"].iloc[0] == 0.5 and pd.isna(edges["weight"].iloc[1])
    assert pd.isna(edges["ingest_issue"].iloc[0])
    assert edges["ingest_issue"].iloc[1] == "weight 'x' is not a number"
    assert edges["source_row"].tolist() == [1, 2]
    assert stats["rows"] == 2 and stats["weighted"] and stats["direction"] == "mutual"


def test_edges_without_a_weight_column_weigh_one(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("user_id,friend_id\nu1,u2\n")
    edges, _ = read_edges(SocialConfig(path=path))
    assert edges["weight"].tolist() == [1.0]


def test_a_missing_edges_column_names_its_option(tmp_path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("uid,fid\nu1,u2\n")
    with pytest.raises(DataError, match=r"'friend_id'.*found \['uid', 'fid'\].*--social-friend"):
        read_edges(SocialConfig(path=path, user_col="uid"))


def test_ingest_writes_edges_beside_untimed_interactions(tmp_path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "checkins.tsv").write_text("user_id\tpoi_id\tcheckins\nu1\tp1\t3\nu2\tp2\t1\n")
    (tmp_path / "friends.tsv").write_text("user_id\tfriend_id\nu1\tu2\n")
    config = IngestConfig(
        source="files",
        files=FilesConfig(path=data, item_col="poi_id", value_col="checkins", timestamp_col="none"),
        social=SocialConfig(path=tmp_path / "friends.tsv"),
    )
    out = ingest(config, DAY, str(tmp_path / "raw"))
    assert not out.timed and out.edges_path is not None
    events = pd.read_parquet(out.interactions_path)
    assert (events["timestamp"] == pd.Timestamp("2024-06-01", tz="UTC")).all()
    assert pd.read_parquet(out.edges_path)[["user_id", "friend_id"]].values.tolist() == [
        ["u1", "u2"]
    ]
    assert len(out.stats["social"]["data"]) == 64  # the sha256 of the file read


def test_a_missing_timestamp_column_says_how_to_go_without(tmp_path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("user_id,item_id\nu1,i1\n")
    config = IngestConfig(source="files", files=FilesConfig(path=path))
    with pytest.raises(DataError, match=r"--timestamp-col none"):
        ingest(config, DAY, str(tmp_path / "raw"))


def test_cli_options_map_onto_the_social_section(tmp_path) -> None:
    options = {
        "social_path": tmp_path / "f.csv",
        "social_user_col": "a",
        "social_friend_col": "b",
        "social_weight_col": "w",
        "social_direction": "follows",
        "timestamp_col": "none",
    }
    config = PipelineConfig(**overrides(None, options))
    social = config.ingest.social
    assert (social.user_col, social.friend_col, social.weight_col) == ("a", "b", "w")
    assert social.direction == "follows" and social.path == tmp_path / "f.csv"
    assert config.ingest.files.timestamp_col is None and not config.ingest.files.timed


def test_preflight_accepts_a_header_without_time(tmp_path) -> None:
    from tasks.preflight import check_columns

    path = tmp_path / "c.tsv"
    path.write_text("user_id\tpoi_id\nu1\tp1\n")
    check_columns(path, FilesConfig(item_col="poi_id", timestamp_col="none"), "c.tsv")
    with pytest.raises(DataError, match="--timestamp-col none"):
        check_columns(path, FilesConfig(item_col="poi_id"), "c.tsv")


def test_a_landing_night_reads_the_graph_whole_beside_its_drops(tmp_path) -> None:
    drops = tmp_path / "landing"
    drops.mkdir()
    (drops / "day1.csv").write_text("user_id,item_id\nu1,i1\n")
    (tmp_path / "follows.csv").write_text("who,whom,w\nu1,u2,0.5\n")
    config = IngestConfig(
        source="landing",
        files=FilesConfig(path=drops, timestamp_col="none"),
        social=SocialConfig(
            path=tmp_path / "follows.csv",
            user_col="who",
            friend_col="whom",
            weight_col="w",
            direction="follows",
        ),
    )
    out = ingest(config, DAY, str(tmp_path / "raw" / f"ingest_date={DAY}"))
    assert out.incremental and not out.timed and out.edges_direction == "follows"
    assert out.edges_path is not None
    assert pd.read_parquet(out.edges_path)["weight"].tolist() == [0.5]
    events = pd.read_parquet(out.interactions_path)
    assert events["timestamp"].tolist() == [pd.Timestamp("2024-06-01", tz="UTC")]
