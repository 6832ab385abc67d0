"""The growth benchmark's items axis: the list of catalogue sizes, the nights it makes, and
its report (a stage table per catalogue size and each night's memory plan) on known
figures."""

from __future__ import annotations

import pytest

from flows.bench.growth import growth_runs, items_report, parse_sizes, report

GIB = 1 << 30


def test_a_list_of_catalogue_sizes_parses_like_the_interaction_sizes() -> None:
    assert parse_sizes("10k, 100k,1M", "items", 10) == [10_000, 100_000, 1_000_000]
    assert parse_sizes("20000", "items", 10) == [20_000]
    assert parse_sizes("1M,5M") == [1_000_000, 5_000_000]
    with pytest.raises(ValueError, match="at least 10 items"):
        parse_sizes("10k,5", "items", 10)
    with pytest.raises(ValueError, match="no sizes"):
        parse_sizes(" , ", "items", 10)


def test_one_axis_grows_at_a_time() -> None:
    assert growth_runs([200_000], [2_000, 20_000]) == [(200_000, 2_000), (200_000, 20_000)]
    assert growth_runs([1_000_000, 5_000_000], [10_000]) == [
        (1_000_000, 10_000),
        (5_000_000, 10_000),
    ]
    with pytest.raises(ValueError, match="one axis at a time"):
        growth_runs([1_000_000, 5_000_000], [10_000, 100_000])


def night(items: int, train: float, score: float, plan: dict | None) -> dict:
    return {
        "n": 1_000_000,
        "items": items,
        "stage_seconds": {"ingest": 4.0, "train": train, "score": score},
        "stage_peak_mb": {"ingest": 300.0, "train": items / 10, "score": items / 20},
        "total_seconds": 4.0 + train + score,
        "peak_rss_mb": 400.0 + items / 10,
        "users": 20_000,
        "rows": 200_000,
        "champion": "ease",
        "trained": list(plan["models"]) if plan else ["popularity", "ease"],
        "generate_seconds": 0,
        "memory_plan": plan,
    }


def plan(**models: tuple[str, float]) -> dict:
    return {
        "budget_bytes": 12 * GIB,
        "models": {
            name: {"action": action, "peak_bytes": int(gib * GIB)}
            for name, (action, gib) in models.items()
        },
    }


def test_the_items_report_has_a_column_per_catalogue_and_each_nights_memory_plan() -> None:
    small = plan(popularity=("train", 0.5), ease=("train", 2.0))
    wide = plan(popularity=("train", 0.5), ease=("scalable", 3.0), mult_dae=("skip", 40.0))
    ann = {
        "sampled users": 2000,
        "k": 10,
        "exact s": 12.0,
        "index s": 1.5,
        "graph build s": 30.0,
        "graph MiB on disk": 60.0,
        "recall@10": 0.9875,
    }
    text = items_report(
        [
            night(10_000, 10.0, 2.0, small),
            {**night(100_000, 50.0, 40.0, wide), "ann": ann},
            {"n": 1_000_000, "items": 1_000_000, "failed": "exit code -9"},
        ],
        ["popularity", "ease", "mult_dae"],
        1_000_000,
    )
    lines = text.splitlines()
    assert "1,000,000 interactions" in lines[0]
    assert lines[2].split() == ["stage", "10k", "100k", "10k->100k"]
    train = next(line for line in lines if line.startswith("train"))
    assert train.split() == ["train", "10.0", "s", "1000", "MB", "50.0", "s", "10000", "MB", "0.50"]
    score = next(line for line in lines if line.startswith("score"))
    assert score.split()[-1] == "2.00"  # 20x the time for 10x the catalogue
    ingest = next(line for line in lines if line.startswith("ingest"))
    assert ingest.split()[-1] == "0.10"  # the same time whatever the catalogue
    flow = next(line for line in lines if line.startswith("flow"))
    assert flow.split()[1:9] == ["16.0", "s", "1400", "MB", "94.0", "s", "10400", "MB"]
    assert (
        "10k items: memory plan, budget 12.0 GiB: popularity as configured (about 512 MiB), "
        "ease as configured (about 2.0 GiB)"
    ) in lines
    assert (
        "100k items: memory plan, budget 12.0 GiB: popularity as configured (about 512 MiB), "
        "ease switched to its scalable form (about 3.0 GiB), mult_dae left out (about 40.0 GiB)"
    ) in lines
    assert "1M items: FAILED, exit code -9" in lines
    assert (
        "100k items: ALS through the item index vs exact, 2,000 sampled users: recall@10 "
        "0.9875; exact 12.0 s, index 1.5 s (graph built in 30.0 s, 60 MiB on disk)"
    ) in lines
    assert not any(line.startswith("10k items: ALS") for line in lines)


def test_the_interactions_report_names_the_memory_plan_only_when_it_changed_a_model() -> None:
    fits = plan(popularity=("train", 0.5), ease=("train", 2.0))
    skips = plan(popularity=("train", 0.5), ease=("skip", 30.0))
    text = report([night(10_000, 10.0, 2.0, fits)], ["popularity", "ease"], 10_000)
    assert "memory plan" not in text
    text = report([night(10_000, 10.0, 2.0, skips)], ["popularity", "ease"], 10_000)
    assert text.splitlines()[-1] == (
        "1M: memory plan, budget 12.0 GiB: popularity as configured (about 512 MiB), "
        "ease left out (about 30.0 GiB)"
    )
