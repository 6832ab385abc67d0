"""``python -m flows.bench.ann`` (``recpipe bench ann``): a factor model's approximate
ranking through its item index against exact ranking, on real interactions.

The interactions (a Parquet file or folder with ``user_id`` and ``item_id``, as
``recpipe generate data`` writes them) become a binary users x items matrix; the model
(ALS or BPR, its default settings) is fitted once with ``ann_min_items=0`` so that it
scores densely. Then, for ``--users`` random users with a history (seeded):

* exact: the model's dense ranking, top-k with the user's history excluded
  (``recommend``), in blocks of ``SCORE_USERS`` users: the reference, in the same run;
* index: the HNSW graph of the model's item vectors built (:class:`models.ann.ItemIndex`,
  one thread, as the model builds it above ``ann_min_items``), then the same users ranked
  as ``recommend`` does with an index: k plus their history plus the margin retrieved,
  scored exactly, the history excluded.

It prints the fit, the graph's build time, its size on disk and the resident memory it
added, both rankings' times and recall@k of the index against exact (the share of the
exact top k that the index's top k holds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.memory import SCORE_USERS


def read_matrix(path: Path, limit: int | None = None) -> sp.csr_matrix:
    """Binary users x items matrix of the interactions at ``path`` (the first ``limit``
    rows when given), ids coded in order of appearance."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(path, format="parquet").to_table(columns=["user_id", "item_id"])
    if limit is not None:
        table = table.slice(0, limit)
    users = pc.dictionary_encode(table["user_id"]).combine_chunks()
    items = pc.dictionary_encode(table["item_id"]).combine_chunks()
    matrix = sp.csr_matrix(
        (
            np.ones(len(table), dtype=np.float32),
            (users.indices.to_numpy(), items.indices.to_numpy()),
        ),
        shape=(len(users.dictionary), len(items.dictionary)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def bench_ann(
    path: Path, model_name: str, n_users: int, k: int = 10, limit: int | None = None
) -> dict[str, Any]:
    """The figures of one run (see the module docstring)."""
    from models import ALS, BPR
    from models.ann import CANDIDATE_MARGIN, ItemIndex
    from models.ranking import top_k_candidates

    start = time.perf_counter()
    matrix = read_matrix(path, limit)
    read = time.perf_counter() - start
    start = time.perf_counter()
    model = {"als": ALS, "bpr": BPR}[model_name](ann_min_items=0).fit(matrix)
    fit = time.perf_counter() - start
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(active, min(n_users, len(active)), replace=False))
    blocks = [users[i : i + SCORE_USERS] for i in range(0, len(users), SCORE_USERS)]

    start = time.perf_counter()
    exact = np.vstack([model.recommend(block, k)[0] for block in blocks])
    exact_seconds = time.perf_counter() - start

    before = _resident_bytes()
    start = time.perf_counter()
    index = ItemIndex.build(model.index_vectors(), model.params["seed"])
    build = time.perf_counter() - start
    added = _resident_bytes() - before
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder))
        size = sum(f.stat().st_size for f in Path(folder).iterdir())

    start = time.perf_counter()
    found = []
    for block in blocks:
        rows = matrix[block]
        widths = k + np.diff(rows.indptr) + CANDIDATE_MARGIN
        items, scores = index.search(model.query_vectors(block, rows), widths)
        found.append(top_k_candidates(items, scores, k, exclude=rows)[0])
    approx = np.vstack(found)
    ann_seconds = time.perf_counter() - start

    hits = sum(
        len(np.intersect1d(a[a >= 0], e[e >= 0])) for a, e in zip(approx, exact, strict=True)
    )
    return {
        "model": model_name,
        "users": matrix.shape[0],
        "items": matrix.shape[1],
        "interactions": int(matrix.nnz),
        "sampled users": len(users),
        "k": k,
        "read s": read,
        "fit s": fit,
        "graph build s": build,
        "graph MiB on disk": size / 2**20,
        "graph MiB resident": added / 2**20,
        "exact s": exact_seconds,
        "index s": ann_seconds,
        "speed-up": exact_seconds / ann_seconds if ann_seconds else float("inf"),
        f"recall@{k}": hits / max(int((exact >= 0).sum()), 1),
    }


def report(result: dict[str, Any]) -> str:
    """One line per figure."""
    width = max(len(key) for key in result)

    def shown(key: str, value: Any) -> str:
        if key.startswith("recall"):
            return f"{value:.4f}"
        if isinstance(value, float):
            return f"{value:,.1f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    return "\n".join(f"{key:<{width}}  {shown(key, value)}" for key, value in result.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="interactions (Parquet)")
    parser.add_argument("--model", choices=["als", "bpr"], default="als")
    parser.add_argument("--users", type=int, default=2000, help="users sampled")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--limit", type=int, help="read only the first N interactions")
    args = parser.parse_args(argv)
    print(report(bench_ann(args.path, args.model, args.users, args.k, args.limit)))


if __name__ == "__main__":
    main()
