"""The report's figures of the night's data and published table, against hand counts."""

import numpy as np
import pandas as pd

from tasks.report import published_figures


def test_published_figures_count_items_users_and_strategies(tmp_path) -> None:
    validated = tmp_path / "interactions.parquet"
    pd.DataFrame({"item_id": ["b", "a", "b", "c", "b", "a"], "user_id": list("uuvvww")}).to_parquet(
        validated
    )
    scores = tmp_path / "recommendations"
    scores.mkdir()
    pd.DataFrame(
        {
            "user_id": ["u", "u", "v", "v"],
            "item_id": ["a", "c", "a", "zz"],  # zz: not in the data
            "strategy": ["personal", "personal", "cold_start", "cold_start"],
        }
    ).to_parquet(scores / "part-00000.parquet")
    pd.DataFrame(
        {"user_id": ["w", "w"], "item_id": ["b", "a"], "strategy": ["fallback", "fallback"]}
    ).to_parquet(scores / "part-00001.parquet")
    figures = published_figures(validated, scores)
    assert figures["catalog"].tolist() == [2, 3, 1]  # a, b, c in id order
    assert figures["recommended"].tolist() == [3, 1, 1]
    assert figures["coverage"] == 1.0  # a, b and c recommended; zz is not an item of the data
    assert (figures["rows"], figures["users"]) == (6, 3)
    assert figures["by_strategy"] == {"personal": 1, "cold_start": 1, "fallback": 1}
    assert isinstance(figures["catalog"], np.ndarray)
