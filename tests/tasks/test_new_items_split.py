"""The new-items protocol's pure parts (tasks/evaluation/): the split, the content rows,
the random reference and the source check, on tiny data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.config import ContentConfig
from tasks.errors import DataError
from tasks.evaluation.catalogue import CatalogueContent, catalogue_from_source
from tasks.evaluation.new_items import random_reference, split_new_items


def events(n_users: int = 12, n_items: int = 20) -> pd.DataFrame:
    """User u chose every item i of the same parity (i % 2 == u % 2)."""
    pairs = [(u, i) for u in range(n_users) for i in range(n_items) if i % 2 == u % 2]
    return pd.DataFrame(
        {
            "user_id": [f"u{u}" for u, _ in pairs],
            "item_id": [f"i{i:02d}" for _, i in pairs],
            "timestamp": pd.to_datetime([1_700_000_000 + n for n in range(len(pairs))], unit="s"),
        }
    )


def catalogue(n_items: int = 20) -> CatalogueContent:
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:02d}" for i in range(n_items)],
            "genre": ["even" if i % 2 == 0 else "odd" for i in range(n_items)],
            "year": [1990 + i for i in range(n_items)],
        }
    )
    config = ContentConfig(detect=False, category=["genre"], numeric=["year"])
    return catalogue_from_source(items, None, config, "test")


def test_held_out_items_have_no_training_events_and_the_share_and_seed_hold() -> None:
    data = events()
    s = split_new_items(data, share=0.2, seed=7)
    assert len(s.new_items) == 4 and s.n_kept == 16  # 20% of 20 items
    held = set(s.new_items.ids)
    fitted = set(s.warm.items.ids)
    assert not held & fitted and held | fitted == set(data["item_id"])
    for part in (s.warm.train, s.warm.valid):  # item indices are the kept items' own
        assert part["item_idx"].between(0, s.n_kept - 1).all()
    assert s.warm.test.empty
    kept_events = (~data["item_id"].isin(held)).sum()
    assert len(s.warm.train) + len(s.warm.valid) == kept_events
    again = split_new_items(data, share=0.2, seed=7)
    assert list(again.new_items.ids) == list(s.new_items.ids)
    others = {tuple(split_new_items(data, share=0.2, seed=seed).new_items.ids) for seed in range(5)}
    assert len(others) > 1  # the seed chooses them
    assert len(split_new_items(data, share=0.5, seed=7).new_items) == 10


def test_every_user_of_a_held_out_item_is_evaluated_on_it() -> None:
    data = events()
    s = split_new_items(data, share=0.25, seed=3)
    users, relevant = s.target()
    expected = {
        (u, i)
        for u, i in zip(data["user_id"], data["item_id"], strict=True)
        if i in set(s.new_items.ids)
    }
    coo = relevant.tocoo()
    got = {
        (s.warm.users.ids[users[r]], s.new_items.ids[c])
        for r, c in zip(coo.row, coo.col, strict=True)
    }
    assert got == expected
    assert relevant.shape == (len(users), len(s.new_items))


def test_a_user_with_only_held_out_items_is_left_out() -> None:
    data = pd.concat(
        [
            events(),
            pd.DataFrame(
                {"user_id": ["lonely"], "item_id": ["i00"], "timestamp": [pd.Timestamp(0)]}
            ),
        ]
    )
    s = split_new_items(data, share=0.2, seed=0)
    held = set(s.new_items.ids)
    lonely_in = "lonely" in set(s.warm.users.ids)
    assert lonely_in == ("i00" not in held)  # kept only when its one item is kept


def test_content_rows_follow_the_fitted_items_then_the_held_out() -> None:
    s = split_new_items(events(), share=0.2, seed=7)
    content = catalogue().content(s.item_ids)
    assert len(content) == s.n_kept + len(s.new_items)
    vocabulary = ["even", "odd"]  # equally frequent: by value
    for row, item in enumerate(s.item_ids):
        number = int(item[1:])
        assert content.values["genre"][row] == 2 + vocabulary.index(
            "even" if number % 2 == 0 else "odd"
        )
    years = np.array([1990 + int(i[1:]) for i in s.item_ids], dtype=float)
    z = (years - years.mean()) / years.std()
    np.testing.assert_allclose(content.values["year"], z, rtol=1e-5, atol=1e-6)
    assert list(s.item_ids[: s.n_kept]) == list(s.warm.items.ids)
    assert list(s.item_ids[s.n_kept :]) == list(s.new_items.ids)


def test_random_reference_matches_its_expectation() -> None:
    n, r, k = 10, 3, 5
    relevant = sp.csr_matrix(np.array([[1] * r + [0] * (n - r)] * 4, dtype=np.float32))
    got = random_reference(relevant, k, shuffles=3000, seed=1)
    discounts = 1 / np.log2(np.arange(2, k + 2))
    expected_ndcg = (r / n) * discounts.sum() / discounts[:r].sum()
    expected_hit = 1 - math.comb(n - r, k) / math.comb(n, k)
    assert got["ndcg@5"] == pytest.approx(expected_ndcg, abs=0.01)
    assert got["recall@5"] == pytest.approx(k / n, abs=0.01)
    assert got["hit@5"] == pytest.approx(expected_hit, abs=0.01)
    assert got["n_users"] == 4
    every = random_reference(sp.csr_matrix(np.ones((2, 3))), 3, shuffles=5)
    assert every["ndcg@3"] == pytest.approx(1.0) and every["recall@3"] == pytest.approx(1.0)


def test_a_catalogue_without_content_is_refused_with_what_to_do() -> None:
    with pytest.raises(DataError, match=r"no item catalogue.*--items-path"):
        catalogue_from_source(None, None, ContentConfig(), "files")
    bare = pd.DataFrame({"item_id": ["a", "b"]})
    with pytest.raises(DataError, match=r"no content columns \(found \[\]\).*\[content\]"):
        catalogue_from_source(bare, None, ContentConfig(), "files")


def test_a_catalogue_file_s_images_are_read_against_its_folder(tmp_path, monkeypatch) -> None:
    from PIL import Image

    from tasks.config import FilesConfig
    from tasks.sources.files import read_catalog_content

    (tmp_path / "img").mkdir()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "img" / "a.png")
    path = tmp_path / "items.csv"
    path.write_text("item_id,poster,genre\na,img/a.png,x\nb,,y\n")
    monkeypatch.chdir(tmp_path / "img")  # relative paths are the file's, not the cwd's
    config = ContentConfig(detect=False, image=["poster"], category=["genre"], image_size=4)
    items, schema = read_catalog_content(path, FilesConfig(), config)
    content = catalogue_from_source(items, schema, config, "files").content(["b", "a"])
    assert content.kinds == {"poster": "image", "genre": "category"}
    assert content.masks["poster"].tolist() == [False, True]
    assert content.values["poster"].shape == (2, 4, 4, 3)
    assert (content.values["poster"][1] == [200, 10, 10]).all()
    assert (content.values["poster"][0] == 0).all()
