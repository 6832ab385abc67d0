"""``bench ann`` reads interactions, ranks sampled users both ways and reports recall."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flows.bench.ann import bench_ann, read_matrix, report


def test_bench_reads_interactions_and_reports_recall_of_the_index(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{n}" for n in rng.integers(0, 60, 2000)],
            "item_id": [f"i{n}" for n in rng.integers(0, 400, 2000)],
        }
    )
    path = tmp_path / "interactions.parquet"
    frame.to_parquet(path)
    matrix = read_matrix(path)
    assert matrix.shape == (frame["user_id"].nunique(), frame["item_id"].nunique())
    assert matrix.nnz == len(frame.drop_duplicates()) and set(matrix.data) == {1.0}
    result = bench_ann(path, "als", n_users=20, k=5)
    assert result["sampled users"] == 20 and result["items"] == matrix.shape[1]
    assert 0.8 <= result["recall@5"] <= 1.0
    assert "recall@5" in report(result)
