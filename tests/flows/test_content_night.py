"""A night on the user's files with an item catalogue that has content: a description,
an embedding, coordinates and images (files beside the catalogue). A broken image and a
vector of the wrong length quarantine that item's image / vector only: the item keeps
its interactions and its other content, and the content features hold the rest (the
direct step: no Prefect flow run)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

RUN_DATE = date(2026, 3, 2)
N_USERS, N_ITEMS = 60, 12
BROKEN_IMAGE, SHORT_VECTOR = "p3", "p5"


def write_data(folder) -> None:
    """Users u0..u59 check in at four of twelve venues p0..p11 (no time); the catalogue
    gives every venue a description, a 4-d embedding (p5's has 2 numbers) and
    coordinates, and p0..p3 an image (p3's file is not an image)."""
    import numpy as np
    from PIL import Image

    lines = ["user_id\tpoi_id\tcheckins"]
    for u in range(N_USERS):
        venues = sorted({(u + j * 5) % N_ITEMS for j in range(4)})
        lines += [f"u{u}\tp{v}\t{1 + (u + v) % 3}" for v in venues]
    (folder / "checkins.tsv").write_text("\n".join(lines) + "\n")
    (folder / "images").mkdir()
    for i in range(4):
        Image.new("RGB", (12, 8), (60 * i, 100, 200)).save(folder / "images" / f"p{i}.png")
    (folder / "images" / f"{BROKEN_IMAGE}.png").write_bytes(b"this is not a png")
    rng = np.random.default_rng(0)
    rows = ["poi_id,description,embedding,lat,lon,photo"]
    for i in range(N_ITEMS):
        vector = " ".join(f"{x:.3f}" for x in rng.normal(size=2 if f"p{i}" == SHORT_VECTOR else 4))
        photo = f"images/p{i}.png" if i < 4 else ""
        text = f"a quiet place number {i} with coffee and {'books' if i % 2 else 'music'}"
        rows.append(f"p{i},{text},{vector},{40 + i / 10},{-3 - i / 10},{photo}")
    (folder / "venues.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def night(make_config, tmp_path_factory) -> tuple:
    from flows.night import Night
    from flows.nightly import run_stages

    root = tmp_path_factory.mktemp("content")
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
                "items_path": str(data / "venues.csv"),
            },
        },
        content={"text": ["description"], "image": ["photo"]},
        train={"models": ["popularity"]},
    )
    night = Night.open(config, RUN_DATE, False, "content-1", logging.getLogger("content-night"))
    return config, run_stages(night)


def test_the_catalogue_content_is_typed_declared_and_detected(night) -> None:
    _, out = night
    assert out["status"] == "COMPLETED"
    assert out["ingest"]["stats"]["content"] == {
        "text": ["description"],
        "image": ["photo"],
        "coordinates": ["lat_lon"],
        "vector": ["embedding"],
    }


def test_bad_content_is_quarantined_never_the_item(night) -> None:
    import pandas as pd

    from tasks.storage.workspace import Workspace

    config, out = night
    content = out["validation"]["tables"]["content"]
    assert content["values_quarantined"] == 2
    assert out["validation"]["tables"]["items"]["rows_accepted"] == N_ITEMS
    validated = Workspace.at(config.workspace).validated(RUN_DATE)
    quarantine = pd.read_parquet(validated / "content_quarantine.parquet")
    by_item = dict(zip(quarantine["item_id"], quarantine["reason"], strict=True))
    assert by_item == {
        BROKEN_IMAGE: "photo (image): image file does not decode",
        SHORT_VECTOR: "embedding (vector): vector length differs from the most common length 4",
    }
    items = pd.read_parquet(validated / "items.parquet").set_index("item_id")
    assert pd.isna(items.loc[BROKEN_IMAGE, "photo"])
    assert items.loc[BROKEN_IMAGE, "description"].startswith("a quiet place number 3")
    assert len(items.loc[BROKEN_IMAGE, "embedding"]) == 4
    assert items.loc[SHORT_VECTOR, "embedding"] is None
    interactions = pd.read_parquet(validated / "interactions.parquet")
    assert (interactions["item_id"] == BROKEN_IMAGE).sum() == 20  # every user who went
    assert out["validation"]["rows_quarantined"] == 0


def test_content_features_sit_beside_the_snapshot(night) -> None:
    import numpy as np

    from tasks.data.content_features import load_content_features
    from tasks.storage.workspace import Workspace

    config, out = night
    assert out["features"]["content"]["items_with"] == {
        "description": N_ITEMS,
        "photo": 3,
        "lat_lon": N_ITEMS,
        "embedding": N_ITEMS - 1,
    }
    features = load_content_features(Workspace.at(config.workspace).features(RUN_DATE))
    ids = list(features["item_id"])
    assert ids == sorted(ids) and features["known"].all()  # rows are the item vocabulary
    broken, short = ids.index(BROKEN_IMAGE), ids.index(SHORT_VECTOR)
    assert not features["has_photo"][broken] and features["has_description"][broken]
    assert features["has_embedding"][broken] and not features["has_embedding"][short]
    assert features["photo"].shape == (N_ITEMS, 32, 32, 3)
    assert features["photo"][broken].sum() == 0 and features["photo"][0].sum() > 0
    np.testing.assert_allclose(np.linalg.norm(features["embedding"][broken]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(features["lat_lon"], axis=1), 1.0, rtol=1e-6)


def test_the_night_publishes_for_every_user(night) -> None:
    _, out = night
    assert out["scoring"]["users"] == N_USERS
