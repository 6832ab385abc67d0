"""The content suite: each bad value quarantines that item's content of that name (the
value nulled, the reason listed), never the item and never its other content."""

from __future__ import annotations

import numpy as np
import pandas as pd

from expectations.content import ContentLimits
from tasks.data.content import ContentColumn, ContentSchema
from tasks.validation.content import validate_content

SCHEMA = ContentSchema(
    (
        ContentColumn("blurb", "text", ("blurb",)),
        ContentColumn("price", "numeric", ("price",)),
        ContentColumn("lat_lon", "coordinates", ("lat", "lon")),
        ContentColumn("emb", "vector", ("emb",)),
        ContentColumn("pic", "image", ("pic",)),
        ContentColumn("tags", "categories", ("tags",)),
    )
)


def items(tmp_path) -> pd.DataFrame:
    """Six items; a0 is clean, each other one has one or two bad values."""
    from PIL import Image

    Image.new("RGB", (5, 5), (255, 0, 0)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but cut short")
    ok, bad, gone = (str(tmp_path / n) for n in ("ok.png", "bad.png", "gone.png"))
    return pd.DataFrame(
        {
            "item_id": ["a0", "a1", "a2", "a3", "a4", "a5"],
            "blurb": ["fine", "x" * 11, "fine", None, "fine", "fine"],
            "price": ["1.5", "2", "inf", "3", "oops", None],
            "lat": ["10", "95", "10", None, "10", "abc"],
            "lon": ["20", "20", "20", None, "-200", "20"],
            "emb": ["1 2 3", "1 2 3", "1 2", "1 nan 3", "a b", [4, 5, 6]],
            "pic": [ok, ok, bad, gone, None, ok],
            "tags": ["a|b", None, "b", "c", "a", "b"],
        }
    )


def test_bad_values_are_quarantined_with_their_reasons(tmp_path) -> None:
    result = validate_content(
        items(tmp_path), SCHEMA, ContentLimits(max_text_chars=10), gx_root=tmp_path / "gx"
    )
    reasons = {
        (row.item_id, row.content): row.reason for row in result.quarantined.itertuples()
    }
    assert reasons == {
        ("a1", "blurb"): "blurb (text): text longer than 10 characters",
        ("a1", "lat_lon"): "lat_lon (coordinates): coordinates out of range "
        "(latitude -90..90, longitude -180..180)",
        ("a2", "price"): "price (numeric): not a finite number",
        ("a2", "emb"): "emb (vector): vector length differs from the most common length 3",
        ("a2", "pic"): "pic (image): image file does not decode",
        ("a3", "emb"): "emb (vector): vector holds values that are not finite",
        ("a3", "pic"): "pic (image): image file missing",
        ("a4", "price"): "price (numeric): not a finite number",
        ("a4", "lat_lon"): "lat_lon (coordinates): coordinates out of range "
        "(latitude -90..90, longitude -180..180)",
        ("a4", "emb"): "emb (vector): not a vector of numbers",
        ("a5", "lat_lon"): "lat_lon (coordinates): coordinates not two numbers",
    }
    assert result.quarantined.set_index(["item_id", "content"]).loc[("a2", "emb"), "value"] == "1 2"
    summary = result.summary()
    assert summary["items"] == 6 and summary["values_quarantined"] == 11
    assert summary["items_with"]["pic"] == 3 and summary["items_with"]["emb"] == 3


def test_the_items_stay_with_their_good_content_typed(tmp_path) -> None:
    result = validate_content(
        items(tmp_path), SCHEMA, ContentLimits(max_text_chars=10), gx_root=tmp_path / "gx"
    )
    out = result.items.set_index("item_id")
    assert list(out.index) == ["a0", "a1", "a2", "a3", "a4", "a5"]
    assert out.loc["a0", "emb"] == [1.0, 2.0, 3.0] and out.loc["a5", "emb"] == [4.0, 5.0, 6.0]
    assert out.loc["a2", "emb"] is None and pd.isna(out.loc["a2", "pic"])
    assert out.loc["a2", "blurb"] == "fine" and out.loc["a2", "lat"] == 10.0  # kept
    assert pd.isna(out.loc["a1", "blurb"]) and out.loc["a1", "price"] == 2.0
    assert np.isnan(out.loc["a1", "lat"]) and np.isnan(out.loc["a1", "lon"])  # both nulled
    assert out.loc["a0", "price"] == 1.5 and out.loc["a0", "pic"].endswith("ok.png")
    assert out.loc["a0", "tags"] == "a|b" and pd.isna(out.loc["a1", "tags"])


def test_clean_content_quarantines_nothing(tmp_path) -> None:
    clean = items(tmp_path).iloc[[0]]
    result = validate_content(clean, SCHEMA, ContentLimits(10), gx_root=tmp_path / "gx")
    assert result.quarantined.empty and list(result.quarantined.columns) == [
        "item_id",
        "content",
        "kind",
        "value",
        "reason",
    ]
    assert result.accounting == (
        "content: 1 items checked; 0 values quarantined (none); items and interactions kept"
    )


def test_columns_the_catalogue_already_typed_keep_their_type(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            "year": pd.array([1999, None], dtype="Int64"),
            "title": pd.array(["One", None], dtype="str"),
        }
    )
    schema = ContentSchema(
        (ContentColumn("year", "numeric", ("year",)), ContentColumn("title", "text", ("title",)))
    )
    out = validate_content(frame, schema, ContentLimits(2), gx_root=tmp_path / "gx").items
    assert out["year"].dtype == "Int64" and out["title"].dtype == frame["title"].dtype
    assert out["year"].iloc[0] == 1999 and pd.isna(out["title"].iloc[0])  # "One": too long
