from datetime import date

import pandas as pd
import pytest

from tasks.errors import DataValidationError
from tasks.scoring.table import recommendations_table
from tasks.validation.output import check_recommendations

INTERACTIONS = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"]})
ITEMS = {"a", "b", "c", "d", "x"}


def table(rows):
    scored = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
    scored["strategy"] = "personal"
    return recommendations_table(scored, "r", date(2026, 1, 1), "m", "1")


GOOD = [("u1", 1, "c", 0.9), ("u1", 2, "d", 0.5), ("u2", 1, "a", 0.7), ("u2", 2, "c", 0.7)]


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory):
    return tmp_path_factory.mktemp("gx")


def test_a_good_table_passes_and_builds_data_docs(gx_root) -> None:
    out = check_recommendations(table(GOOD), INTERACTIONS, ITEMS, {"x"}, 2, gx_root)
    assert out["checks"] >= 10 and out["data_docs_index"].endswith("index.html")


@pytest.mark.parametrize(
    ("rows", "rule"),
    [
        (GOOD[:3], "2 rows per user"),
        ([("u1", 1, "c", 0.5), ("u1", 2, "d", 0.9), *GOOD[2:]], "scores descending"),
        ([("u1", 1, "a", 0.9), ("u1", 2, "d", 0.5), *GOOD[2:]], "already interacted"),
        ([("u1", 1, "x", 0.9), ("u1", 2, "d", 0.5), *GOOD[2:]], "denied or unavailable"),
        ([("u1", 1, "zz", 0.9), ("u1", 2, "d", 0.5), *GOOD[2:]], "in the catalogue"),
        ([("u1", 1, "c", 0.9), ("u1", 1, "d", 0.5), *GOOD[2:]], "ranks unique per user"),
        ([("ghost", 1, "c", 0.9), ("ghost", 2, "d", 0.5), *GOOD[2:]], "today's interactions"),
    ],
)
def test_each_broken_rule_stops_publishing_with_its_name(gx_root, rows, rule) -> None:
    with pytest.raises(DataValidationError, match=rule) as info:
        check_recommendations(table(rows), INTERACTIONS, ITEMS, {"x"}, 2, gx_root)
    assert "nothing was published" in str(info.value)
