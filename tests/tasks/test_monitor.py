"""Monitor figures with hand-computed answers: Jaccard drift, top-1 change, coverage, Gini."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from tasks.config import MonitorConfig
from tasks.monitor import (
    check_thresholds,
    coverage,
    drift,
    failure_message,
    gini,
    monitor_figures,
    previous_published,
    recommendation_gini,
)


def recs(lists: dict[str, list[str]]) -> pd.DataFrame:
    rows = [
        {"user_id": user, "rank": rank, "item_id": item}
        for user, items in lists.items()
        for rank, item in enumerate(items, start=1)
    ]
    return pd.DataFrame(rows)


CURRENT = recs({"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["x"]})
PREVIOUS = recs({"u1": ["a", "b", "d"], "u2": ["c", "d"], "u4": ["a"]})


def test_drift_by_hand() -> None:
    # u1: {a,b,c} vs {a,b,d}: 2 shared of 4 -> 0.5; u2: {a,b} vs {c,d}: 0 of 4 -> 0.0
    # top-1: u1 a -> a (same), u2 a -> c (changed); u3 is new, u4 is gone
    out = drift(CURRENT, PREVIOUS)
    assert out["users_compared"] == 2
    assert out["mean_jaccard"] == pytest.approx(0.25)
    assert out["top1_changed_share"] == pytest.approx(0.5)
    assert (out["users_new"], out["users_gone"]) == (1, 1)


def test_drift_uses_rank_not_row_order_for_top1() -> None:
    shuffled = CURRENT.sample(frac=1.0, random_state=3)
    assert drift(shuffled, PREVIOUS)["top1_changed_share"] == pytest.approx(0.5)


def test_identical_lists_have_no_drift_and_disjoint_users_none() -> None:
    same = drift(CURRENT, CURRENT)
    assert same["mean_jaccard"] == 1.0 and same["top1_changed_share"] == 0.0
    nobody = drift(recs({"u1": ["a"]}), recs({"u9": ["a"]}))
    assert nobody["users_compared"] == 0 and nobody["mean_jaccard"] is None


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([1, 1, 1, 1], 0.0),  # perfectly even
        ([0, 0, 0, 4], 0.75),  # one item takes all: (n-1)/n
        ([1, 2, 3], 2 / 9),  # sum |xi-xj| over ordered pairs 8 / (2 * 3^2 * mean 2) = 8/36
        ([3, 1, 2], 2 / 9),  # order does not matter
        ([0, 0], 0.0),  # nothing recommended
        ([], 0.0),
    ],
)
def test_gini_by_hand(counts: list[int], expected: float) -> None:
    assert gini(np.array(counts)) == pytest.approx(expected)


def test_recommendation_gini_counts_never_recommended_items_as_zero() -> None:
    # catalog a,b,c,d; slots a,a,b -> counts [2,1,0,0] -> sorted [0,0,1,2]:
    # 2*(3*1 + 4*2) / (4*3) - 5/4 = 22/12 - 15/12 = 7/12
    catalog = pd.Index(["a", "b", "c", "d"])
    table = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["a", "b", "a"]})
    assert recommendation_gini(table, catalog) == pytest.approx(7 / 12)


def test_coverage_counts_distinct_catalog_items_only() -> None:
    catalog = pd.Index(["a", "b", "c", "d"])
    table = pd.DataFrame({"item_id": ["a", "a", "b", "z"]})  # z is not in the catalog
    assert coverage(table, catalog) == pytest.approx(0.5)


def test_monitor_figures_without_previous_run() -> None:
    figures = monitor_figures(CURRENT, None, pd.Index(["a", "b", "c", "d", "x"]))
    assert figures["mean_jaccard"] is None and figures["top1_changed_share"] is None
    assert figures["users"] == 3 and figures["rows"] == 6 and figures["users_new"] == 3
    assert figures["coverage"] == pytest.approx(4 / 5)  # a, b, c, x


def test_thresholds_warn_fail_and_off() -> None:
    figures = {"mean_jaccard": 0.25, "top1_changed_share": 0.5, "coverage": 0.5, "gini": 0.6}
    warn = check_thresholds(figures, MonitorConfig(warn_min_jaccard=0.3))
    assert [(f.figure, f.level) for f in warn] == [("mean_jaccard", "warn")]
    fail = check_thresholds(
        figures,
        MonitorConfig(warn_min_jaccard=0.3, fail_min_jaccard=0.3, fail_max_gini=0.5),
    )
    assert [(f.figure, f.level) for f in fail] == [("mean_jaccard", "fail"), ("gini", "fail")]
    assert "mean_jaccard=0.2500 is below the minimum 0.3 (fail)" in fail[0].message
    assert check_thresholds(figures, MonitorConfig(warn_min_jaccard=None)) == []
    first_night = {**figures, "mean_jaccard": None, "top1_changed_share": None}
    assert check_thresholds(first_night, MonitorConfig(fail_min_jaccard=0.9)) == []
    message = failure_message(fail, date(2026, 3, 1))
    assert "previous run 2026-03-01" in message and "previous tables keep serving" in message


def test_previous_published_is_the_latest_strictly_earlier_date(tmp_path) -> None:
    from tasks.storage import lake

    table = tmp_path / "recommendations"
    for day in (date(2026, 2, 27), date(2026, 3, 1), date(2026, 3, 3)):
        source = tmp_path / f"scores-{day}.parquet"
        recs({"u1": [f"item-{day}"]}).to_parquet(source)
        lake.write_date(table, source, day, publish_id=f"test-{day}")
    day, rows = previous_published(table, date(2026, 3, 3))
    assert day == date(2026, 3, 1)
    assert rows[["user_id", "rank", "item_id"]].values.tolist() == [["u1", 1, "item-2026-03-01"]]
    assert previous_published(table, date(2026, 2, 27)) == (None, None)
    assert previous_published(tmp_path / "no-table", date(2026, 3, 3)) == (None, None)


def test_data_age_in_whole_days_to_the_run_date() -> None:
    from tasks.monitor import data_age_days

    newest = pd.Timestamp("2018-09-24 03:00", tz="UTC")
    assert data_age_days(newest, date(2018, 9, 24)) == 0.0
    assert data_age_days(newest, date(2026, 12, 2)) == 2991.0
    assert data_age_days(None, date(2026, 12, 2)) is None


def test_defaults_warn_on_a_popularity_list_and_stale_data_but_never_fail() -> None:
    # the case the defaults exist for: everyone gets the same 10 of 1,000 items, 8 years old
    lists = {f"u{i}": [f"i{j}" for j in range(10)] for i in range(50)}
    catalog = pd.Index([f"i{j}" for j in range(1000)])
    figures = monitor_figures(recs(lists), None, catalog, age_days=2991.0)
    assert figures["coverage"] == pytest.approx(0.01) and figures["gini"] > 0.95
    findings = check_thresholds(figures, MonitorConfig())
    assert [(f.figure, f.level) for f in findings] == [
        ("coverage", "warn"),
        ("gini", "warn"),
        ("data_age_days", "warn"),
    ]
    assert "stale data: the newest event is 2991 day(s) before the run date" in (
        findings[2].message
    )
    fresh = monitor_figures(CURRENT, CURRENT, pd.Index(["a", "b", "c", "x"]), age_days=1.0)
    assert check_thresholds(fresh, MonitorConfig()) == []
    failing = check_thresholds(figures, MonitorConfig(fail_max_data_age_days=30))
    assert ("data_age_days", "fail") in [(f.figure, f.level) for f in failing]
