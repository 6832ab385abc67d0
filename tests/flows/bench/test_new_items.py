"""``recpipe evaluate --protocol new-items``: a content model whose answer is known ranks
the held-out items perfectly, models without content say they cannot, the random row is
there; the command line takes the protocol and refuses a source without content."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import models
from flows.bench.new_items import report, run_new_items_leaderboard
from flows.bench.new_items_lightfm import item_features
from flows.cli import main
from models.base import BaseRecommender
from models.content import ContentScoring, ItemContent
from tests.tasks.test_new_items_split import catalogue, events


class GenreMatch(ContentScoring, BaseRecommender):
    """Scores an item 1 when its ``genre`` is the one most of the user's items have."""

    name: ClassVar[str] = "genre_match"
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_", "genres_")
    fit_inputs: ClassVar[tuple[str, ...]] = ("content",)
    required_inputs: ClassVar[tuple[str, ...]] = ("content",)
    inputs: ClassVar[frozenset[str]] = frozenset({"content"})

    def _fit(self, matrix: sp.csr_matrix, content: ItemContent) -> None:
        self.genres_ = np.asarray(content.values["genre"][: matrix.shape[1]])

    def _taste(self, history: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        rows = sp.csr_matrix(history)[users]
        counts = np.stack([rows @ (self.genres_ == g) for g in (2, 3)], axis=1)
        return np.where(counts[:, 0] >= counts[:, 1], 2, 3)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        taste = self._taste(history, np.arange(len(users)))
        return (self.genres_[None, :] == taste[:, None]).astype(np.float32)

    def score_content(
        self, users: np.ndarray, history: sp.csr_matrix | None, content: ItemContent
    ) -> np.ndarray:
        taste = self._taste(history if history is not None else self.train_matrix_, users)
        return (content.values["genre"][None, :] == taste[:, None]).astype(np.float32)


@pytest.fixture
def genre_match(monkeypatch):
    monkeypatch.setitem(models.MODEL_CLASSES, "genre_match", GenreMatch)
    return "genre_match"


def test_a_content_model_with_a_known_answer_ranks_new_items_perfectly(genre_match) -> None:
    logged = []
    frame = run_new_items_leaderboard(
        events(),
        None,
        catalogue(),
        [genre_match, "popularity", "item_knn"],
        k=3,
        seed=7,
        share=0.4,
        log=lambda row, data: logged.append(row["model"]),
    )
    rows = frame.set_index("model")
    assert logged == [genre_match, "popularity", "item_knn", "random"]
    assert list(frame["model"][:2]) == [genre_match, "random"]  # figures first, best first
    assert rows.loc[genre_match, "test_ndcg@3"] == pytest.approx(1.0)
    assert rows.loc[genre_match, "test_hit@3"] == pytest.approx(1.0)
    assert rows.loc[genre_match, "test_n_users"] == 12  # every user chose a held-out item
    assert rows.loc[genre_match, "inputs"] == "content"
    assert 0 < rows.loc["random", "test_ndcg@3"] < 1
    assert math.isnan(rows.loc["popularity", "test_ndcg@3"])
    assert "every new item scores 0" in rows.loc["popularity", "note"]
    assert math.isnan(rows.loc["item_knn", "test_ndcg@3"])
    assert rows.loc["item_knn", "note"].startswith("no content")
    table = report(frame.assign(protocol="new-items"), k=3)
    assert "genre_match" in table and "x random" in table


def test_lightfm_features_describe_new_items_by_content_alone() -> None:
    content = catalogue(4).content(["i00", "i01", "i02", "i03"])
    plain = item_features(content, n_kept=2, identity=False)
    with_ids = item_features(content, n_kept=2, identity=True)
    assert plain.shape == (4, 4 + 1)  # genre ids 0..3, the year
    assert with_ids.shape == (4, 2 + 4 + 1)
    assert with_ids[2:, :2].nnz == 0  # held-out rows: no id feature
    assert with_ids[0, 0] > 0 and with_ids[1, 1] > 0
    np.testing.assert_allclose(abs(plain).sum(axis=1).A.ravel(), 1.0, rtol=1e-6)
    assert plain[0, 2] > 0 and plain[1, 3] > 0  # "even" is id 2, "odd" id 3


def test_the_command_line_takes_the_protocol_and_its_share() -> None:
    from typer.main import get_command

    from flows.cli import app

    group = get_command(app)
    argv = ["--protocol", "new-items", "--new-items-share", "0.3"]
    parent = group.make_context("recpipe", ["evaluate", *argv])
    params = group.get_command(parent, "evaluate").make_context("evaluate", argv, parent=parent)
    assert params.params["protocol"] == "new-items"
    assert params.params["new_items_share"] == pytest.approx(0.3)


def test_a_source_without_content_is_refused_with_what_to_do(tmp_path, capsys) -> None:
    data = tmp_path / "events.csv"
    events().assign(timestamp=lambda f: f["timestamp"].astype("int64") // 10**9).to_csv(
        data, index=False
    )
    base = ["--workspace", str(tmp_path / "ws"), "evaluate", "--protocol", "new-items"]
    code = main([*base, "--source", "files", "--path", str(data), "--models", "popularity"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no item catalogue" in err and "--items-path" in err
    items = tmp_path / "items.csv"
    pd.DataFrame({"item_id": sorted(set(events()["item_id"]))}).to_csv(items, index=False)
    source = ["--source", "files", "--path", str(data), "--items-path", str(items)]
    code = main([*base, *source, "--models", "popularity"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no content columns" in err and "[content]" in err
    assert main([*base, "--new-items-share", "1.5"]) == 2
    assert "--new-items-share" in capsys.readouterr().err


def test_without_lightfm_the_benchmark_says_how_to_install_it(monkeypatch) -> None:
    import sys

    from flows.bench.new_items_lightfm import INSTALL, lightfm_missing

    monkeypatch.setitem(sys.modules, "lightfm", None)  # import lightfm raises ImportError
    line = lightfm_missing()
    assert line is not None and line.startswith("lightfm: not installed")
    assert INSTALL in line


def test_the_warm_protocols_give_the_catalogue_content_to_models_that_read_it(
    genre_match,
) -> None:
    from flows.bench.leaderboard import run_leaderboard

    frame = run_leaderboard(events(), None, "random", [genre_match], k=3, catalogue=catalogue())
    assert frame.loc[0, "test_ndcg@3"] == pytest.approx(1.0)  # every unseen item of its genre
    with pytest.raises(ValueError, match="needs content"):
        run_leaderboard(events(), None, "random", [genre_match], k=3)


def _fake_gowalla(folder) -> None:
    """Three users, four venues: u0 at the equator's venues, u2 only at the pole."""
    (folder / "checkins.tsv").write_text(
        "user_id\tpoi_id\tcheckins\n0\t10\t2\n0\t11\t1\n1\t11\t1\n1\t12\t3\n2\t13\t1\n"
    )
    (folder / "friends.tsv").write_text("user_id\tfriend_id\n0\t1\n")
    (folder / "pois.tsv").write_text(
        "poi_id\tlatitude\tlongitude\n10\t0.0\t0.0\n11\t0.52\t90.52\n12\t0.77\t90.77\n"
        "13\t90.0\t0.0\n99\t10.0\t10.0\n"
    )


def test_gowalla_venues_get_their_coordinates_as_content(tmp_path) -> None:
    from flows.bench.new_items import gowalla, sample_users
    from flows.bench.new_items_lightfm import grid_cells

    _fake_gowalla(tmp_path)
    interactions, catalogue = gowalla(tmp_path)
    assert list(interactions["user_id"]) == ["0", "0", "1", "1", "2"]
    assert list(interactions["value"]) == [2.0, 1.0, 1.0, 3.0, 1.0]
    assert interactions["timestamp"].nunique() == 1  # Gowalla has no time
    assert sorted(catalogue.items["item_id"]) == ["10", "11", "12", "13"]  # 99: no check-in
    assert [(c.kind, c.columns) for c in catalogue.schema.columns] == [
        ("coordinates", ("latitude", "longitude"))
    ]
    content = catalogue.content(["10", "13", "unknown"])
    assert content.kinds == {"latitude_longitude": "coordinates"}
    xyz = content.values["latitude_longitude"]
    np.testing.assert_allclose(xyz[:2], [[1, 0, 0], [0, 0, 1]], atol=1e-6)  # unit vectors
    assert list(content.masks["latitude_longitude"]) == [True, True, False]

    everyone = catalogue.content(["10", "11", "12", "13"])
    coords = everyone.values["latitude_longitude"]
    cells = grid_cells(coords, everyone.masks["latitude_longitude"], (1.0, 0.1)).toarray()
    assert cells.shape == (4, 3 + 4)  # 1 degree: 11 and 12 share a cell; 0.1: apart
    assert (cells.sum(axis=1) == 2).all()
    assert (cells[1, :3] == cells[2, :3]).all() and not (cells[1, 3:] == cells[2, 3:]).all()

    kept, line = sample_users(interactions, users=1, min_events=2, seed=0)
    assert set(kept["user_id"]) <= {"0", "1"} and kept["user_id"].nunique() == 1
    assert len(kept) == 2  # every event of the one user drawn
    assert "1 of 3 users (2 with at least 2 distinct items; seed 0)" in line


def test_a_gowalla_folder_without_venues_says_what_is_missing(tmp_path) -> None:
    from flows.bench.new_items import gowalla
    from tasks.errors import DataError

    _fake_gowalla(tmp_path)
    (tmp_path / "pois.tsv").unlink()
    with pytest.raises(DataError, match=r"pois\.tsv missing.*--path"):
        gowalla(tmp_path)
