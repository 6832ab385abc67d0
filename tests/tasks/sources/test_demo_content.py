"""The demo catalogue's content: descriptions and pictures that follow each item's genres,
the same bytes for the same seed, and items released on the end day that nobody has seen."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.sources.demo import GENRES, demo_releases, generate_demo
from tasks.sources.demo_content import FILLER, GENRE_WORDS, IMAGES_DIR, write_demo_images

END = pd.Timestamp("2026-02-01", tz="UTC")
SHAPE = {"n_users": 150, "n_items": 300, "mean_interactions": 10, "end": END}


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_demo(seed=3, **SHAPE)


def pixels(paths: list[str]) -> np.ndarray:
    from PIL import Image

    out = []
    for path in paths:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (32, 32)
            out.append(np.asarray(image))
    return np.stack(out)


def test_the_same_seed_gives_the_same_texts_and_image_bytes(tmp_path, demo) -> None:
    _, items = demo
    _, again = generate_demo(seed=3, **SHAPE)
    pd.testing.assert_frame_equal(items, again)
    a = write_demo_images(items, tmp_path / "a", GENRES[:10], seed=3)
    b = write_demo_images(again, tmp_path / "b", GENRES[:10], seed=3)
    other = write_demo_images(items, tmp_path / "c", GENRES[:10], seed=4)
    bytes_a = [Path(p).read_bytes() for p in a["image"]]
    assert bytes_a == [Path(p).read_bytes() for p in b["image"]]
    assert bytes_a != [Path(p).read_bytes() for p in other["image"]]  # the seed matters
    assert len(set(bytes_a)) == len(items)  # no two pictures alike, even of one genre
    _, reseeded = generate_demo(seed=4, **SHAPE)
    assert not items["description"].equals(reseeded["description"])


def test_images_are_written_beside_the_table_by_absolute_path(tmp_path, demo) -> None:
    _, items = demo
    assert items["image"].iloc[0] == f"{IMAGES_DIR}/i00000.png"  # relative, before ingest
    out = write_demo_images(items, tmp_path, GENRES[:10], seed=3)
    assert items["image"].iloc[0] == f"{IMAGES_DIR}/i00000.png"  # the input is not changed
    assert out["image"].tolist() == [str((tmp_path / p).resolve()) for p in items["image"]]
    written = sorted(p.name for p in (tmp_path / IMAGES_DIR).iterdir())
    assert written == sorted(f"{i}.png" for i in items["item_id"])  # no temp file left


def test_the_upcoming_items_have_content_and_no_events(demo) -> None:
    events, items = demo
    unseen = items[~items["item_id"].isin(events["item_id"])]
    upcoming = items.iloc[300:]
    assert len(upcoming) == 9  # 3% of 300 more items
    assert set(upcoming["item_id"]) <= set(unseen["item_id"])
    assert upcoming["item_id"].tolist() == [f"i{j:05d}" for j in range(300, 309)]
    released = demo_releases(n_items=300, seed=3, end=END)
    assert released.index.tolist() == items["item_id"].tolist()
    assert (released[upcoming["item_id"]] == END).all()  # out on the end day
    assert (upcoming["year"] == END.year).all()
    assert upcoming["description"].str.split().str.len().between(15, 40).all()
    assert upcoming["image"].str.endswith(".png").all()
    assert upcoming["primary_genre"].nunique() > 1


def test_the_upcoming_items_leave_the_events_as_they_are() -> None:
    events, items = generate_demo(seed=3, **SHAPE)
    without, alone = generate_demo(seed=3, upcoming_share=0.0, **SHAPE)
    pd.testing.assert_frame_equal(events, without)
    assert len(alone) == 300
    pd.testing.assert_frame_equal(items.iloc[:300, :5], alone.iloc[:, :5])
    with pytest.raises(ValueError, match="upcoming_share"):
        generate_demo(n_users=10, n_items=20, upcoming_share=0.9)


def test_an_images_mean_colour_tells_its_primary_genre(tmp_path, demo) -> None:
    _, items = demo
    written = write_demo_images(items, tmp_path, GENRES[:10], seed=3)
    colour = pixels(written["image"].tolist()).reshape(len(items), -1, 3).mean(axis=1)
    genre = items["primary_genre"].to_numpy()
    names = sorted(set(genre))
    centroids = np.stack([colour[genre == g].mean(axis=0) for g in names])
    nearest = np.argmin(((colour[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    accuracy = float((np.array(names)[nearest] == genre).mean())
    assert accuracy >= 0.9, accuracy
    # while the colour of a picture is not its genre's alone: items of one genre differ
    spread = [colour[genre == g].std(axis=0).mean() for g in names]
    assert min(spread) > 1.0, spread


def test_descriptions_speak_of_the_items_genres() -> None:
    lexicons = {g: set(words) for g, words in GENRE_WORDS.items()}
    every = [w for words in GENRE_WORDS.values() for w in words]
    assert len(every) == len(set(every))  # each word belongs to one genre
    assert not set(every) & set(FILLER)
    _, items = generate_demo(seed=3, **SHAPE)
    own, others = 0, 0
    for genres, text in zip(items["genres"], items["description"], strict=True):
        words = text.lower().rstrip(".").split()
        mine = set().union(*(lexicons[g] for g in genres.split("|")))
        own += sum(w in mine for w in words)
        others += sum(w in set(every) - mine for w in words)
        assert text[0].isupper() and text.endswith(".")
    assert others == 0 and own > 0.3 * items["description"].str.split().str.len().sum()


def test_ingest_writes_the_images_and_the_content_suite_passes_them(tmp_path) -> None:
    from expectations.content import ContentLimits
    from tasks.config import ContentConfig, DemoConfig, IngestConfig
    from tasks.data.content import ContentSchema, describe
    from tasks.ingest import ingest
    from tasks.validation.content import validate_content

    raw = tmp_path / "raw" / "ingest_date=2026-02-01"
    config = IngestConfig(demo=DemoConfig(n_users=60, n_items=100))
    out = ingest(config, date(2026, 2, 1), str(raw), content=ContentConfig())
    items = pd.read_parquet(out.items_path)
    assert len(items) == 103
    assert all(Path(p).is_file() and Path(p).parent == raw / IMAGES_DIR for p in items["image"])
    schema = ContentSchema.read(out.content_path)
    kinds = describe(schema)
    assert "description" in kinds["text"] and kinds["image"] == ["image"]
    assert out.stats["content"] == kinds
    result = validate_content(items, schema, ContentLimits(5000), gx_root=tmp_path / "gx")
    assert result.quarantined.empty, result.quarantined
    assert result.with_content["image"] == result.with_content["description"] == 103
