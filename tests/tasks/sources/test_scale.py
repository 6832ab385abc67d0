import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.sources import scale as scale_data
from tasks.sources.demo import generate_demo
from tasks.sources.scale import INTERACTIONS_SCHEMA, generate_scale
from tasks.sources.scale_catalogue import ITEMS_SCHEMA

END = pd.Timestamp("2026-02-01", tz="UTC")
SMALL = {
    "n_interactions": 20_000,
    "n_users": 500,
    "n_items": 1_000,
    "weeks": 4,
    "seed": 7,
    "end": "2026-02-01",
    "chunk_users": 120,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    import time

    started = time.perf_counter()
    result = generate_scale(tmp_path_factory.mktemp("scale") / "out", **SMALL)
    result["measured_around"] = time.perf_counter() - started
    events = pd.read_parquet(result["interactions_path"])
    items = pd.read_parquet(result["items_path"])
    return result, events, items


def test_layout_and_exact_row_count(small: tuple) -> None:
    result, events, _ = small
    out = Path(result["interactions_path"]).parent
    assert len(events) == result["n_interactions"] == 20_000
    assert (result["n_users"], result["n_items"]) == (500, 1_000)
    assert len(result["files"]) == 5  # 500 users in chunks of 120
    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "interactions",
        "items.parquet",
    ]
    assert [Path(f).name for f in result["files"]] == [f"part-{k:05d}.parquet" for k in range(5)]
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in result["files"]) == 20_000
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == 20_000 and len(manifest["files"]) == 5
    # the generation's own time: positive, within the time measured around the call
    assert 0 < result["seconds"] <= result["measured_around"] + 1e-3
    assert not list(out.parent.glob(".*partial*"))  # the staging folder is gone


@pytest.mark.parametrize(
    ("n", "users", "items"),
    [(1_234, 100, 300), (100, 100, 200), (299, 100, 200), (100, 20, 10), (7_777, 3, 10_000)],
)
def test_exact_total_for_awkward_sizes(tmp_path: Path, n: int, users: int, items: int) -> None:
    result = generate_scale(tmp_path / "out", n, n_users=users, n_items=items, chunk_users=7)
    events = pd.read_parquet(result["interactions_path"])
    assert len(events) == n
    per_user = events["user_id"].value_counts()
    assert len(per_user) == users  # every user has an event
    assert per_user.max() <= max(1, items // 2)
    if n >= 3 * users:
        assert per_user.min() >= 3


def test_schema_matches_the_demo(small: tuple) -> None:
    result, events, items = small
    for f in result["files"]:
        assert pq.read_schema(f).remove_metadata() == INTERACTIONS_SCHEMA
    assert pq.read_schema(result["items_path"]).remove_metadata() == ITEMS_SCHEMA
    demo_events, demo_items = generate_demo(n_users=20, n_items=50)
    assert list(events.columns) == list(demo_events.columns)
    assert events.dtypes.to_dict() == demo_events.dtypes.to_dict()
    # the demo's catalogue without its content (descriptions, image files): none at scale
    demo_items = demo_items.drop(columns=["description", "image"])
    assert list(items.columns) == list(demo_items.columns)
    assert items.dtypes.to_dict() == demo_items.dtypes.to_dict()
    assert str(events["timestamp"].dt.tz) == "UTC"


def test_ids_values_and_items(small: tuple) -> None:
    _, events, items = small
    assert events["user_id"].str.fullmatch(r"u\d{5}").all()
    assert set(events["user_id"].str[1:].astype(int)) == set(range(500))
    assert items["item_id"].tolist() == [f"i{j:05d}" for j in range(1_000)]
    assert set(events["item_id"]) <= set(items["item_id"])
    assert items["title"].str.fullmatch(r"The \w+ \w+ \(\d{4}\)").all()
    assert (items["title"].str[-5:-1].astype(int) == items["year"]).all()
    assert items["year"].between(1950, 2025).all()
    assert (items["genres"].str.split("|").str[0] == items["primary_genre"]).all()
    second = items["genres"].str.contains("|", regex=False).mean()
    assert 0.15 < second < 0.35
    assert events["value"].isin([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    expected = np.where(events["value"] >= 4, "rating", "view")
    assert (events["event_type"] == expected).all()


def test_timestamps_in_window_distinct_and_sorted_per_file(small: tuple) -> None:
    result, events, _ = small
    assert events["timestamp"].max() <= END
    assert events["timestamp"].min() >= END - pd.Timedelta(weeks=4)
    assert not events.duplicated(["user_id", "item_id", "timestamp"]).any()
    assert not events.duplicated(["user_id", "timestamp"]).any()
    assert events.duplicated(["user_id", "item_id"]).mean() < 0.02  # repeats are rare
    for f in result["files"]:
        assert pd.read_parquet(f)["timestamp"].is_monotonic_increasing


def test_deterministic_and_seed_matters(tmp_path: Path, small: tuple) -> None:
    result, events, items = small
    again = generate_scale(tmp_path / "again", **SMALL)
    for a, b in zip(result["files"], again["files"], strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    assert pq.read_table(result["items_path"]).equals(pq.read_table(again["items_path"]))
    other = generate_scale(tmp_path / "other", **{**SMALL, "seed": 8})
    other_events = pd.read_parquet(other["interactions_path"])
    assert len(other_events) == len(events)
    assert not other_events.equals(events)
    assert not pd.read_parquet(other["items_path"]).equals(items)


def test_users_concentrate_on_one_or_two_genres(small: tuple) -> None:
    _, events, items = small
    genre = events.merge(items[["item_id", "primary_genre"]], on="item_id")
    sizes = genre.groupby("user_id").size()
    heavy = genre[genre["user_id"].isin(sizes[sizes >= 20].index)]
    shares = heavy.groupby("user_id")["primary_genre"].value_counts(normalize=True)
    top = shares.groupby(level=0).max()
    top_two = shares.groupby(level=0).apply(lambda s: s.nlargest(2).sum())
    assert len(top) > 100
    assert top.median() > 0.5
    assert top_two.median() > 0.75  # 10 genres: uniform taste would give ~0.2
    # Ratings are higher in the user's favourite genre.
    favourite = shares.groupby(level=0).idxmax().str[1]
    liked = genre["primary_genre"].to_numpy() == genre["user_id"].map(favourite).to_numpy()
    assert genre["value"][liked].mean() > genre["value"][~liked].mean() + 0.5


def test_popular_items_get_more_events(small: tuple) -> None:
    _, events, items = small
    counts = events["item_id"].value_counts().reindex(items["item_id"], fill_value=0)
    counts = counts.sort_values(ascending=False)
    top_decile = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    bottom_half = counts.iloc[len(counts) // 2 :].sum() / counts.sum()
    # Uniform popularity would give about 0.14 and 0.43 (Poisson noise around 20 an item).
    assert top_decile > 0.25
    assert bottom_half < 0.35


def test_defaults(tmp_path: Path) -> None:
    result = generate_scale(tmp_path / "a", 1_000)
    assert (result["n_users"], result["n_items"]) == (100, 200)
    result = generate_scale(tmp_path / "b", 40)  # fewer events than 100 users
    assert (result["n_interactions"], result["n_users"]) == (40, 40)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="pick an empty folder"):
        generate_scale(out, 1_000)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    done = tmp_path / "done"
    generate_scale(done, 1_000)
    before = {p: p.stat().st_mtime_ns for p in done.rglob("*")}
    with pytest.raises(FileExistsError, match="pick an empty folder"):
        generate_scale(done, 1_000)
    assert {p: p.stat().st_mtime_ns for p in done.rglob("*")} == before

    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(pd.read_parquet(generate_scale(empty, 500)["interactions_path"])) == 500

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        generate_scale(a_file, 1_000)


def test_a_failure_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = scale_data._write_chunk
    written = []

    def failing(path: Path, *args: object) -> None:
        if written:
            raise OSError("disk full")
        written.append(path)
        real(path, *args)

    monkeypatch.setattr(scale_data, "_write_chunk", failing)
    with pytest.raises(OSError, match="disk full"):
        generate_scale(tmp_path / "out", 2_000, chunk_users=10)
    assert written  # one chunk was written before the failure
    assert list(tmp_path.iterdir()) == []  # neither out nor a partial folder


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_interactions": 0}, "n_interactions must be an integer >= 1, got 0"),
        ({"n_interactions": 10.5}, "n_interactions must be an integer"),
        ({"n_interactions": True}, "n_interactions must be an integer"),
        ({"n_interactions": "100"}, "n_interactions must be an integer"),
        ({"n_interactions": 100, "n_users": 0}, "n_users must be an integer >= 1"),
        ({"n_interactions": 100, "n_users": 101}, "n_interactions must be >= n_users"),
        ({"n_interactions": 100, "n_genres": 1}, "n_genres must be an integer >= 2"),
        ({"n_interactions": 100, "n_genres": 19}, r"n_genres must be in 2\.\.18, got 19"),
        ({"n_interactions": 100, "n_items": 5}, "n_items must be an integer >= 10"),
        ({"n_interactions": 100, "weeks": 0}, "weeks must be an integer >= 1"),
        ({"n_interactions": 100, "seed": -1}, "seed must be an integer >= 0"),
        ({"n_interactions": 100, "chunk_users": 0}, "chunk_users must be an integer >= 1"),
        ({"n_interactions": 100, "end": "not a date"}, "end must be a timestamp"),
        ({"n_interactions": 100, "end": None}, "end must be a timestamp"),
        (
            {"n_interactions": 1_000, "n_users": 10, "n_items": 100},
            r"n_interactions must be <= n_users \* 50 = 500 \(a user has at most n_items // 2",
        ),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_scale(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_chunks_are_capped_by_events_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale_data, "MAX_CHUNK_EVENTS", 700)
    result = generate_scale(tmp_path / "out", 5_000, n_users=100, n_items=400)
    rows = [pq.ParquetFile(f).metadata.num_rows for f in result["files"]]
    assert sum(rows) == 5_000
    assert max(rows) <= 700 and len(rows) >= 8


def test_end_with_a_time_zone(tmp_path: Path) -> None:
    end = "2026-03-01T05:30:00+02:00"
    result = generate_scale(tmp_path / "out", 2_000, weeks=1, end=end)
    stamps = pd.read_parquet(result["interactions_path"])["timestamp"]
    assert stamps.max() <= pd.Timestamp(end)
    assert stamps.min() >= pd.Timestamp(end) - pd.Timedelta(weeks=1)
