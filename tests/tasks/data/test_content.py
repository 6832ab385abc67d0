"""The catalogue's content columns: declared in [content], detected by what they hold,
and a clear error for a declared column the catalogue lacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.config import ContentConfig, FilesConfig
from tasks.data.content import ContentSchema, content_schema, detect_kind, parse_vector
from tasks.errors import DataError


def _kinds(schema: ContentSchema) -> dict[str, str]:
    return {c.name: c.kind for c in schema.columns}


def catalogue(tmp_path) -> pd.DataFrame:
    """Twelve items, one column of each kind, as a CSV reads them (text)."""
    from PIL import Image

    (tmp_path / "pics").mkdir(exist_ok=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "pics" / "a.png")
    n = 12
    return pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "blurb": [f"a story of {i} friends and a {('cat', 'dog')[i % 2]}" for i in range(n)],
            "colour": ["red", "blue", "green"] * 4,
            "tags": ["a|b", "b", "c|a", "b|c"] * 3,
            "price": [f"{i * 1.5}" for i in range(n)],
            "Latitude": [f"{10 + i}" for i in range(n)],
            "lng": [f"{20 + i}" for i in range(n)],
            "emb": [f"[{i}, 0.5, -1]" for i in range(n)],
            "pic": ["pics/a.png"] * n,
            "sku": [f"x{i:04d}" for i in range(n)],  # unique short codes: not content
        }
    )


def test_each_kind_is_detected_by_what_the_column_holds(tmp_path) -> None:
    schema = content_schema(catalogue(tmp_path), ContentConfig(), tmp_path)
    assert _kinds(schema) == {
        "Latitude_lng": "coordinates",
        "blurb": "text",
        "colour": "category",
        "tags": "categories",
        "price": "numeric",
        "emb": "vector",
        "pic": "image",
    }
    assert schema.of_kind("coordinates")[0].columns == ("Latitude", "lng")
    assert not any(c.declared for c in schema.columns)


def test_images_are_detected_only_when_a_file_is_there(tmp_path) -> None:
    paths = pd.Series(["pics/a.png", "pics/b.jpg"])
    assert detect_kind(paths, base=tmp_path) is None
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "b.jpg").write_bytes(b"")
    assert detect_kind(paths, base=tmp_path) == "image"


def test_typed_columns_and_lists_of_floats() -> None:
    assert detect_kind(pd.Series([1.5, 2.0, None])) == "numeric"
    assert detect_kind(pd.Series([[0.1, 0.2], np.array([0.3, 0.4])])) == "vector"
    assert detect_kind(pd.Series([["a", "b"], ["c"]])) is None
    assert detect_kind(pd.Series([True, False])) == "category"
    assert detect_kind(pd.Series([None, None], dtype=object)) is None


def test_declared_kinds_win_over_detection(tmp_path) -> None:
    config = ContentConfig(category=["price"], text=["tags"], ignore=["colour"])
    kinds = _kinds(content_schema(catalogue(tmp_path), config, tmp_path))
    assert kinds["price"] == "category" and kinds["tags"] == "text"
    assert "colour" not in kinds
    declared = [c.name for c in content_schema(catalogue(tmp_path), config).columns if c.declared]
    assert declared == ["tags", "price"]


def test_without_detection_only_the_declared_columns_are_content(tmp_path) -> None:
    config = ContentConfig(detect=False, coordinates=[{"latitude": "Latitude", "longitude": "lng"}])
    assert _kinds(content_schema(catalogue(tmp_path), config)) == {"Latitude_lng": "coordinates"}


def test_a_declared_column_that_is_missing_says_what_to_do(tmp_path) -> None:
    config = ContentConfig(image=["poster"], text=["blurb"])
    with pytest.raises(DataError) as raised:
        content_schema(catalogue(tmp_path), config)
    message = str(raised.value)
    assert "'poster' (image) declared in [content] but missing" in message
    assert "found ['item_id', 'blurb'" in message and "fix the names in [content]" in message


def test_vectors_are_read_from_lists_and_text() -> None:
    for value in ([1, 2.5], "[1, 2.5]", "1 2.5", "1;2.5", "(1,2.5)"):
        np.testing.assert_array_equal(parse_vector(value), [1.0, 2.5])
    assert parse_vector("one two") is None and parse_vector("") is None
    assert np.isnan(parse_vector("1 nan")[1])  # kept: validation says it is not finite


def test_the_catalogue_file_keeps_its_content_with_images_resolved(tmp_path) -> None:
    from tasks.sources.files import read_catalog_content

    catalogue(tmp_path).rename(columns={"item_id": "poi"}).to_csv(
        tmp_path / "items.csv", index=False
    )
    items, schema = read_catalog_content(
        tmp_path / "items.csv", FilesConfig(item_col="poi"), ContentConfig()
    )
    assert items["item_id"].tolist()[:2] == ["i0", "i1"] and "poi" not in items
    assert "sku" not in items and "emb" in items  # only content columns are kept
    assert items["pic"].iloc[0] == str((tmp_path / "pics" / "a.png").resolve())
    saved = ContentSchema.from_json(schema.to_json())
    assert saved == schema


def test_declared_content_without_a_catalogue_is_an_error(tmp_path) -> None:
    from tasks.ingest import SourceData, write_content_schema

    data = SourceData(pd.DataFrame(), None)
    with pytest.raises(DataError, match="no item catalog"):
        write_content_schema(data, ContentConfig(text=["description"]), tmp_path)
    assert write_content_schema(data, ContentConfig(), tmp_path) is None


def test_the_content_section_reads_toml_and_environment(tmp_path) -> None:
    from tasks.config import load_config

    (tmp_path / "c.toml").write_text(
        '[content]\ntext = ["description"]\ncoordinates = [{latitude = "lat", longitude = "lon"}]\n'
    )
    config = load_config(
        tmp_path / "c.toml", environ={"RECPIPE__CONTENT__IMAGE": '["poster"]'}
    ).content
    assert config.text == ["description"] and config.image == ["poster"]
    assert config.coordinates[0].latitude == "lat" and config.declared
    assert not load_config(environ={}).content.declared


def test_the_content_digest_follows_the_image_files_bytes(tmp_path) -> None:
    from tasks.data.content import content_digest

    items, schema = catalogue(tmp_path), ContentSchema()
    items["pic"] = str(tmp_path / "pics" / "a.png")
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "schema.json").write_text(
        content_schema(items, ContentConfig(detect=False, image=["pic"])).to_json()
    )
    before = content_digest(tmp_path / "items.parquet", tmp_path / "schema.json")
    assert before == content_digest(tmp_path / "items.parquet", tmp_path / "schema.json")
    (tmp_path / "pics" / "a.png").write_bytes(b"edited")
    assert content_digest(tmp_path / "items.parquet", tmp_path / "schema.json") != before
    assert content_digest(tmp_path / "items.parquet", None) is None and not schema
