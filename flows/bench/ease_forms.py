"""``recpipe bench ease-forms``: EASE's dense and sparse forms on one dataset, one split.

Protocol: binary interactions (a user saw an item or not), a per-user random 80/20
split (each user's items shuffled with ``seed``; round(0.2 x n) of them, at most n - 1,
are held out: a user with one item keeps it), full ranking of every item outside the
user's training items, NDCG@10 and Recall@10 (``models/metrics.py``) over the users with
held-out items. l2 is tuned for the dense form over a grid on that split; the sparse
form then runs at the best dense l2 for several neighbour counts. Both forms are fitted
through ``models.make_recommender("ease", form=...)`` and ranked by the model's own
``recommend`` (sparse scores are ranked over their entries, with exactly the dense
lists), so the figures are the product's, not a re-implementation's.

Fit seconds are wall time on whatever else the machine runs. Peak memory is the
``tracemalloc`` peak during the fit: Python and numpy allocations (the Gram matrix, the
inverse, the systems), not the process's resident size.

Datasets: a name (``ml-100k``, ``gowalla``: folders under the shared datasets root) or a
path: a MovieLens 100K folder (``u.data``), the Gowalla folder (``checkins.tsv``), or a
CSV, TSV or Parquet file with user and item columns.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models import make_recommender
from models.ease import EASESettings
from models.memory import score_users
from models.metrics import ndcg_at_k, recall_at_k
from tasks.errors import DataError

#: the shared datasets beside the repository (never copied into it: MovieLens' licence)
DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
#: the target: the sparse form within this share of the dense form's NDCG
TOLERANCE = 0.02
K = 10


def _read_table(path: Path, user_col: str, item_col: str) -> pd.DataFrame:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype="str")
    missing = [c for c in (user_col, item_col) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: column {missing[0]!r} missing; found {list(frame.columns)}; "
            "name the columns with --user-col and --item-col"
        )
    return pd.DataFrame({"user": frame[user_col], "item": frame[item_col]})


def load_interactions(
    source: str | Path,
    user_col: str = "user_id",
    item_col: str = "item_id",
    datasets: Path = DATASETS,
) -> pd.DataFrame:
    """(user, item) rows of ``source``: a dataset name under ``datasets``, a MovieLens
    100K folder or ``u.data``, the Gowalla folder or ``checkins.tsv``, or a CSV / TSV /
    Parquet file whose ``user_col`` and ``item_col`` name the columns."""
    path = Path(source).expanduser()
    if not path.exists() and (datasets / str(source)).exists():
        path = datasets / str(source)
    if path.is_dir():
        found = [path / name for name in ("u.data", "checkins.tsv") if (path / name).is_file()]
        if not found:
            raise DataError(
                f"{path}: no u.data (MovieLens 100K) or checkins.tsv (Gowalla) in the folder; "
                "pass one of those folders or a CSV / Parquet file"
            )
        path = found[0]
    if not path.is_file():
        raise DataError(
            f"{source}: no such file, folder or dataset under {datasets}; pass a path "
            "(a MovieLens 100K or Gowalla folder, or a CSV / Parquet file)"
        )
    if path.name == "u.data":
        frame = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1], dtype="str")
        return pd.DataFrame({"user": frame[0], "item": frame[1]})
    if path.name == "checkins.tsv":
        return _read_table(path, "user_id", "poi_id")
    return _read_table(path, user_col, item_col)


def binary_matrix(interactions: pd.DataFrame) -> sp.csr_matrix:
    """Users x items, 1 where the user interacted with the item (repeats count once);
    users and items indexed in order of first appearance."""
    users = pd.factorize(interactions["user"])[0]
    items = pd.factorize(interactions["item"])[0]
    ones = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (users, items)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def split_per_user(
    matrix: sp.csr_matrix, test_share: float = 0.2, seed: int = 42
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test) of a binary users x items matrix: each user's items in a random order
    (``seed``), the first round(test_share x n) held out (numpy's rounding, half to
    even), never all of them."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    rng = np.random.default_rng(seed)
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((rng.random(matrix.nnz), rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
    held = np.minimum(np.round(test_share * counts).astype(np.int64), np.maximum(counts - 1, 0))
    test = rank < held[rows]

    def part(keep: np.ndarray) -> sp.csr_matrix:
        values = np.ones(int(keep.sum()), dtype=np.float32)
        return sp.csr_matrix((values, (rows[keep], matrix.indices[keep])), shape=matrix.shape)

    return part(~test), part(test)


def rank_and_score(model: Any, train: sp.csr_matrix, test: sp.csr_matrix) -> dict[str, float]:
    """NDCG@K and Recall@K of ``model`` over the users with held-out items, every item
    outside a user's training items ranked, a block of users at a time."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    block = score_users(train.shape[1])
    recommended = np.concatenate(
        [
            model.recommend(users[start : start + block], K, history=train)[0]
            for start in range(0, users.size, block)
        ]
    )
    relevant = test[users]
    return {
        "ndcg": ndcg_at_k(recommended, relevant, K),
        "recall": recall_at_k(recommended, relevant, K),
    }


@dataclass(frozen=True)
class Row:
    form: str
    l2: float
    neighbors: int | None
    ndcg: float
    recall: float
    fit_seconds: float
    peak_bytes: int


def measure(train: sp.csr_matrix, test: sp.csr_matrix, **params: Any) -> Row:
    """Fit EASE with ``params`` (under ``tracemalloc``) and rank the held-out users."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        model = make_recommender("ease", **params).fit(train)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    scores = rank_and_score(model, train, test)
    neighbors = params["neighbors"] if params["form"] == "sparse" else None
    return Row(
        params["form"], params["l2"], neighbors, scores["ndcg"], scores["recall"], seconds, peak
    )


def compare(
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    l2s: list[float],
    neighbors: list[int],
    similarity: str = "cosine",
    progress: Callable[[Row], object] | None = None,
    dense: bool = True,
) -> list[Row]:
    """Dense EASE at every ``l2s``, then sparse EASE at the best of them for every
    ``neighbors``; ``progress(row)`` is told of each row as it is measured. Without
    ``dense`` (a catalog too wide for the dense inverse), the sparse form alone at the one
    value ``l2s`` holds."""
    if not dense and len(l2s) != 1:
        raise ValueError(f"the sparse form alone runs at one l2, got {len(l2s)}: {l2s}")
    rows: list[Row] = []

    def run(**params: Any) -> Row:
        row = measure(train, test, **params)
        rows.append(row)
        if progress is not None:
            progress(row)
        return row

    l2 = l2s[0]
    if dense:
        l2 = max((run(form="dense", l2=value) for value in l2s), key=lambda r: r.ndcg).l2
    for m in neighbors:
        run(form="sparse", l2=l2, neighbors=m, similarity=similarity)
    return rows


def best_dense(rows: list[Row]) -> Row | None:
    """The dense row with the highest NDCG, if any dense row was run."""
    return max((r for r in rows if r.form == "dense"), key=lambda r: r.ndcg, default=None)


def _change(row: Row, best: float) -> float:
    return (row.ndcg - best) / best if best > 0 else float("nan")


def verdict(rows: list[Row]) -> str:
    """One line: is the sparse form at its default neighbours within ``TOLERANCE`` of the
    best dense NDCG?"""
    default = EASESettings().neighbors
    best = best_dense(rows)
    sparse = [r for r in rows if r.form == "sparse" and r.neighbors == default]
    if not sparse:
        return f"sparse EASE at its default {default} neighbours was not run (--neighbors)"
    if best is None:
        return f"no dense row (--no-dense): nothing to compare the sparse form's NDCG@{K} with"
    change = _change(sparse[0], best.ndcg)
    within = "within" if change >= -TOLERANCE else "NOT within"
    return (
        f"sparse EASE at its default {default} neighbours: NDCG@{K} {sparse[0].ndcg:.4f} "
        f"against dense {best.ndcg:.4f} (l2 {best.l2:g}), {change:+.1%}: "
        f"{within} {TOLERANCE:.0%} of dense"
    )


def row_line(row: Row, best: float | None = None) -> str:
    """One table line; ``best`` (the best dense NDCG) adds the change against it."""
    change = "" if best is None else f"{_change(row, best):+.1%}"
    neighbors = "-" if row.neighbors is None else str(row.neighbors)
    return (
        f"{row.form:<7}{row.l2:>8g}{neighbors:>11}{row.ndcg:>10.4f}{row.recall:>11.4f}"
        f"{change:>10}{row.fit_seconds:>9.1f}{row.peak_bytes / 2**20:>10,.0f}"
    )


HEADER = (
    f"{'form':<7}{'l2':>8}{'neighbours':>11}{'NDCG@' + str(K):>10}{'Recall@' + str(K):>11}"
    f"{'vs dense':>10}{'fit s':>9}{'peak MB':>10}"
)


def report(rows: list[Row]) -> str:
    """The table (NDCG against the best dense row) and the verdict."""
    best = best_dense(rows)
    lines = [HEADER, *(row_line(r, None if best is None else best.ndcg) for r in rows)]
    lines.append("peak MB: tracemalloc peak during the fit (numpy and Python allocations)")
    return "\n".join([*lines, verdict(rows)])


def describe(source: str, train: sp.csr_matrix, test: sp.csr_matrix, seed: int) -> dict[str, Any]:
    """The dataset and its split in figures."""
    return {
        "dataset": source,
        "seed": seed,
        "users": train.shape[0],
        "items": train.shape[1],
        "train_interactions": int(train.nnz),
        "test_interactions": int(test.nnz),
        "test_users": int((np.diff(test.indptr) > 0).sum()),
    }


def as_json(info: dict[str, Any], rows: list[Row]) -> dict[str, Any]:
    """The run as one JSON-ready object: dataset figures, protocol, rows and verdict."""
    protocol = {"split": "per-user random 80/20", "k": K, "peak": "tracemalloc, fit"}
    rows_out = [asdict(r) for r in rows]
    return {**info, "protocol": protocol, "rows": rows_out, "verdict": verdict(rows)}
