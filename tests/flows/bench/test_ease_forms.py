"""``recpipe bench ease-forms``: its split, its loaders, the two forms on a catalog where
every item is every item's neighbour, and the verdict line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from flows.bench.ease_forms import (
    Row,
    binary_matrix,
    compare,
    load_interactions,
    report,
    split_per_user,
    verdict,
)
from flows.cli import main
from tasks.errors import DataError


def user_rows(counts: list[int], n_items: int = 60) -> sp.csr_matrix:
    """User u interacted with items 0 .. counts[u] - 1."""
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.concatenate([np.arange(c) for c in counts])
    ones = np.ones(rows.size, dtype=np.float32)
    return sp.csr_matrix((ones, (rows, cols)), shape=(len(counts), n_items))


def test_each_user_holds_out_a_fifth_of_their_items_and_keeps_at_least_one() -> None:
    matrix = user_rows([1, 2, 3, 5, 8, 10, 50])
    train, test = split_per_user(matrix, seed=42)
    assert np.diff(test.indptr).tolist() == [0, 0, 1, 1, 2, 2, 10]
    assert np.diff(train.indptr).tolist() == [1, 2, 2, 4, 6, 8, 40]
    assert (train.multiply(test)).nnz == 0  # no item both trains and tests
    assert (train + test != matrix).nnz == 0  # together they are the whole matrix

    _, most = split_per_user(matrix, test_share=0.9)
    assert np.diff(most.indptr).tolist() == [0, 1, 2, 4, 7, 9, 45]  # never all of them


def test_the_split_follows_its_seed() -> None:
    matrix = user_rows([50])
    first, again = split_per_user(matrix, seed=42)[1], split_per_user(matrix, seed=42)[1]
    other = split_per_user(matrix, seed=7)[1]
    assert first.indices.tolist() == again.indices.tolist()
    assert first.indices.tolist() != other.indices.tolist()


def test_with_every_other_item_as_a_neighbour_sparse_ease_ranks_as_dense() -> None:
    rng = np.random.default_rng(3)
    matrix = sp.csr_matrix((rng.random((60, 8)) < 0.5).astype(np.float32))
    train, test = split_per_user(matrix, seed=42)
    assert (train.T @ train).toarray().all()  # every pair of items co-occurs in training
    rows = compare(train, test, l2s=[5.0, 50.0], neighbors=[2, 7])
    dense = max(rows[:2], key=lambda r: r.ndcg)
    assert rows[0].ndcg != rows[1].ndcg  # the grid chooses
    assert [(r.form, r.l2, r.neighbors) for r in rows] == [
        ("dense", 5.0, None),
        ("dense", 50.0, None),
        ("sparse", dense.l2, 2),  # the sparse form runs at the best dense l2
        ("sparse", dense.l2, 7),
    ]
    full = rows[3]
    assert 0 < dense.ndcg < 1
    assert full.ndcg == pytest.approx(dense.ndcg, abs=1e-12)
    assert full.recall == pytest.approx(dense.recall, abs=1e-12)
    assert rows[2].ndcg != pytest.approx(dense.ndcg, abs=1e-6)  # two neighbours are not all


def test_movielens_gowalla_and_plain_files_load_as_user_item_pairs(tmp_path) -> None:
    ml = tmp_path / "ml-100k"
    ml.mkdir()
    (ml / "u.data").write_text("196\t242\t3\t881250949\n196\t302\t3\t891717742\n22\t242\t1\t1\n")
    frame = load_interactions(ml)
    assert list(zip(frame["user"], frame["item"], strict=True)) == [
        ("196", "242"),
        ("196", "302"),
        ("22", "242"),
    ]
    gowalla = tmp_path / "datasets" / "gowalla"
    gowalla.mkdir(parents=True)
    (gowalla / "checkins.tsv").write_text(
        "user_id\tpoi_id\tcheckins\n1\t10\t3\n1\t10\t1\n2\t11\t1\n"
    )
    frame = load_interactions("gowalla", datasets=tmp_path / "datasets")  # by name
    matrix = binary_matrix(frame)
    assert matrix.shape == (2, 2) and matrix.nnz == 2  # repeated check-ins count once
    assert matrix.data.tolist() == [1.0, 1.0]

    csv = tmp_path / "events.csv"
    pd.DataFrame({"uid": ["a", "b"], "sku": ["x", "x"]}).to_csv(csv, index=False)
    assert load_interactions(csv, "uid", "sku")["item"].tolist() == ["x", "x"]
    with pytest.raises(DataError, match="column 'user_id' missing; found \\['uid', 'sku'\\]"):
        load_interactions(csv)
    with pytest.raises(DataError, match=r"no u\.data"):
        load_interactions(tmp_path / "datasets")


def dense_and_sparse(sparse_ndcg: float, neighbors: int = 128) -> list[Row]:
    return [
        Row("dense", 100.0, None, 0.40, 0.3, 1.0, 2**20),
        Row("dense", 500.0, None, 0.50, 0.3, 1.0, 2**20),
        Row("sparse", 500.0, neighbors, sparse_ndcg, 0.3, 1.0, 2**20),
    ]


def test_the_verdict_compares_the_default_neighbours_with_the_best_dense_row() -> None:
    assert verdict(dense_and_sparse(0.495)) == (
        "sparse EASE at its default 128 neighbours: NDCG@10 0.4950 against dense 0.5000 "
        "(l2 500), -1.0%: within 2% of dense"
    )
    assert "-4.0%: NOT within 2% of dense" in verdict(dense_and_sparse(0.48))
    assert "was not run" in verdict(dense_and_sparse(0.5, neighbors=64))
    assert "no dense row (--no-dense)" in verdict(dense_and_sparse(0.5)[2:])
    assert report(dense_and_sparse(0.5)[2:]).splitlines()[1].split()[-3:] == ["0.3000", "1.0", "1"]
    table = report(dense_and_sparse(0.495)).splitlines()
    assert table[1].split() == ["dense", "100", "-", "0.4000", "0.3000", "-20.0%", "1.0", "1"]
    assert table[3].split()[:6] == ["sparse", "500", "128", "0.4950", "0.3000", "-1.0%"]


def test_the_command_prints_the_table_and_writes_json(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    users, items = np.nonzero(rng.random((40, 12)) < 0.4)
    csv = tmp_path / "events.csv"
    pd.DataFrame({"user_id": users, "item_id": items}).to_csv(csv, index=False)
    out = tmp_path / "forms.json"
    argv = ["bench", "ease-forms", str(csv), "--l2", "10", "--neighbors", "4,128"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    n_users, n_items = np.unique(users).size, np.unique(items).size
    assert f"{n_users} users, {n_items} items" in printed
    assert "sparse EASE at its default 128 neighbours" in printed
    written = json.loads(out.read_text())
    assert [r["neighbors"] for r in written["rows"]] == [None, 4, 128]
    assert written["train_interactions"] + written["test_interactions"] == users.size
    assert written["seed"] == 42 and written["verdict"] in printed
    assert main(["bench", "ease-forms", str(csv), "--l2", "ten"]) == 2
    capsys.readouterr()

    sparse_only = ["bench", "ease-forms", str(csv), "--no-dense", "--l2", "10"]
    assert main([*sparse_only, "--neighbors", "4"]) == 0
    alone = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in alone[-4:-1]] == ["form", "sparse", "peak"]
    assert alone[-1].startswith("sparse EASE at its default 128 neighbours was not run")
    assert main([*sparse_only[:-1], "10,20"]) == 2
