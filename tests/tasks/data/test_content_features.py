"""Content features: token and category ids with capped vocabularies, numbers scaled with
their statistics saved, coordinates on the unit sphere, vectors L2-normalised, images
resized, a mask per content, rows aligned with the item vocabulary."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd

from tasks.config import ContentConfig
from tasks.data.content import ContentColumn, ContentSchema
from tasks.data.content_features import (
    build_vocabulary,
    encode_ids,
    load_content_features,
    tokens,
    unit_vectors,
    write_content_features,
)

SCHEMA = ContentSchema(
    (
        ContentColumn("blurb", "text", ("blurb",)),
        ContentColumn("kind", "category", ("kind",)),
        ContentColumn("tags", "categories", ("tags",)),
        ContentColumn("price", "numeric", ("price",)),
        ContentColumn("lat_lon", "coordinates", ("lat", "lon")),
        ContentColumn("emb", "vector", ("emb",)),
        ContentColumn("pic", "image", ("pic",)),
    )
)


def test_tokens_and_a_capped_vocabulary() -> None:
    assert tokens("Hello, World! hello_again 42") == ["hello", "world", "hello", "again", "42"]
    assert tokens(None) == [] and tokens(float("nan")) == []
    lists = [["b", "a", "b"], ["c", "b", "a"]]
    vocabulary = build_vocabulary(lists, size=4)  # two reserved ids, two tokens
    assert vocabulary == ["b", "a"]
    np.testing.assert_array_equal(encode_ids(lists, vocabulary, 2), [[2, 3], [1, 2]])


def test_coordinates_as_unit_vectors() -> None:
    xyz = unit_vectors(np.array([0.0, 90.0, 0.0, np.nan]), np.array([0.0, 0.0, 90.0, 1.0]))
    np.testing.assert_allclose(xyz, [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]], atol=1e-7)


def snapshot(tmp_path) -> tuple:
    """A vocabulary of three items (z, x, y order by index) and a catalogue of four:
    "w" has no interactions, "y" has no content at all."""
    from PIL import Image

    Image.new("RGB", (64, 32), (0, 0, 255)).save(tmp_path / "blue.png")
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({"item_id": ["z", "x", "y"], "item_idx": [0, 1, 2]}).to_parquet(
        features / "items.parquet"
    )
    catalogue = pd.DataFrame(
        {
            "item_id": ["x", "z", "w"],
            "blurb": ["red red shoe", "red hat", None],
            "kind": ["a", "b", "a"],
            "tags": ["p|q", None, "q|r|s"],
            "price": [1.0, 3.0, None],
            "lat": [0.0, None, 90.0],
            "lon": [0.0, None, 0.0],
            "emb": [[3.0, 4.0], None, [0.0, 2.0]],
            "pic": [str(tmp_path / "blue.png"), None, None],
        }
    )
    catalogue.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "schema.json").write_text(SCHEMA.to_json())
    config = ContentConfig(vocabulary_size=3, max_tokens=4, image_size=8)
    summary = write_content_features(
        str(tmp_path / "items.parquet"),
        str(tmp_path / "schema.json"),
        str(features),
        config,
        date(2026, 3, 2),
    )
    return features, summary


def test_rows_follow_the_vocabulary_then_the_unseen_items(tmp_path) -> None:
    features, summary = snapshot(tmp_path)
    loaded = load_content_features(features)
    assert loaded["item_id"].tolist() == ["z", "x", "y", "w"]
    assert loaded["known"].tolist() == [True, True, True, False]
    assert summary["items"] == 4 and summary["items_in_vocabulary"] == 3
    assert loaded["has_blurb"].tolist() == [True, True, False, False]
    assert loaded["has_pic"].tolist() == [False, True, False, False]
    assert summary["items_with"]["emb"] == 2


def test_each_kind_is_encoded(tmp_path) -> None:
    features, _ = snapshot(tmp_path)
    loaded = load_content_features(features)
    # vocabulary of size 3: "red" (3 times) only; "hat", "shoe" unknown
    np.testing.assert_array_equal(loaded["blurb"][:2], [[2, 1, 0, 0], [2, 2, 1, 0]])
    np.testing.assert_array_equal(loaded["kind"], [1, 2, 0, 2])  # "a" twice: id 2
    assert loaded["tags"].shape == (4, 3)  # the longest list
    np.testing.assert_allclose(loaded["price"], [1.0, -1.0, 0.0, 0.0])
    np.testing.assert_allclose(loaded["lat_lon"][[1, 3]], [[1, 0, 0], [0, 0, 1]], atol=1e-7)
    np.testing.assert_allclose(loaded["emb"], [[0, 0], [0.6, 0.8], [0, 0], [0, 1]])
    assert loaded["pic"].shape == (4, 8, 8, 3) and loaded["pic"].dtype == np.uint8
    np.testing.assert_array_equal(loaded["pic"][1, 0, 0], [0, 0, 255])
    assert loaded["pic"][0].sum() == 0
    stats = json.loads((features / "content_stats.json").read_text())
    assert stats["run_date"] == "2026-03-02"
    assert stats["content"]["price"]["mean"] == 2.0 and stats["content"]["price"]["std"] == 1.0
    assert stats["content"]["blurb"]["vocabulary"] == ["red"]
