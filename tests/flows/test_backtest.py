"""The backtest on a tiny dataset: dates, one row per night, regrets against hindsight.

Each night runs the nightly's stages through :class:`flows.night.Night` with the direct
step: every stage function called in this process, no Prefect flow run."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from flows.backtest import backtest_dates, next_period_holdout, policy_regrets, replay
from tasks.config import PipelineConfig


def test_dates_every_n_days_up_to_the_end() -> None:
    assert backtest_dates(date(2026, 1, 1), date(2026, 1, 15), 7) == [
        date(2026, 1, 1),
        date(2026, 1, 8),
        date(2026, 1, 15),
    ]
    assert backtest_dates(date(2026, 1, 1), date(2026, 1, 14), 7)[-1] == date(2026, 1, 8)
    with pytest.raises(ValueError, match="before --start"):
        backtest_dates(date(2026, 1, 2), date(2026, 1, 1), 7)


def test_next_period_holds_new_items_of_users_with_history() -> None:
    import pandas as pd

    rows = [
        ("u1", "a", "2026-01-01"),
        ("u1", "b", "2026-01-09"),  # next period, new: relevant
        ("u1", "a", "2026-01-10"),  # next period, seen before: not relevant
        ("u2", "c", "2026-01-09"),  # no history before the date: not evaluated
        ("u3", "a", "2026-01-02"),
        ("u3", "c", "2026-01-20"),  # after the period
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    day = pd.Timestamp("2026-01-08", tz="UTC")
    holdout = next_period_holdout(frame, day, day + pd.Timedelta(days=7))
    pairs = {(holdout.users.ids[u], holdout.items.ids[i]) for u, i in holdout.relevant.to_numpy()}
    assert pairs == {("u1", "b")}


def test_replay_a_night_per_date_and_regrets_against_hindsight(tmp_path) -> None:
    from prefect.context import FlowRunContext

    from tasks.sources.demo import generate_demo

    events, _ = generate_demo(
        n_users=200, n_items=80, mean_interactions=20, seed=3, end="2026-03-01"
    )
    config = PipelineConfig(
        train={"models": ["popularity", "ease"]},
        evaluate={"min_users": 20, "min_events": 50, "bootstrap_resamples": 200},
    )
    dates = backtest_dates(date(2026, 2, 8), date(2026, 2, 22), 7)
    lines: list[str] = []
    assert FlowRunContext.get() is None
    rows = replay(events, dates, 7, config, None, say=lines.append, workspace=tmp_path)
    assert [r["date"] for r in rows] == ["2026-02-08", "2026-02-15", "2026-02-22"]
    assert len(lines) == 3 and "regret" in lines[0]
    first = rows[0]
    assert first["decision"].startswith("promoted")  # no champion yet: something serves
    for r in rows:
        assert r["best_ndcg"] == max(r["popularity_ndcg"], r["ease_ndcg"], r["champion_ndcg"])
        assert r["regret"] == pytest.approx(r["best_ndcg"] - r["champion_ndcg"])
        assert r["regret"] >= 0 and r["next_users"] > 0
    from tasks.storage.workspace import Workspace

    nights = Workspace.at(tmp_path / "nights")  # each date: a night as of the day before
    assert all(nights.features(date(2026, 2, d)).is_dir() for d in (7, 14, 21))
    assert rows[0]["champion"] in {"popularity@2026-02-08", "ease@2026-02-08"}
    regrets = policy_regrets(rows, ["popularity", "ease"])
    assert set(regrets) == {"gate", "always popularity", "always ease"}
    assert regrets["gate"] == pytest.approx(np.mean([r["regret"] for r in rows]))
    stages = {"ingest", "validate", "features", "train", "gate", "next_period"}
    assert all({f"seconds_{s}" for s in stages} <= set(r) for r in rows)

    run = _record_and_read(config.model_copy(update={"workspace": tmp_path / "ws"}), rows)
    assert {"backtest.csv", "policies.csv", "next_period_ndcg.png"} <= run["artifacts"]
    assert run["dates"] == ["2026-02-08", "2026-02-15", "2026-02-22"]
    metrics = run["metrics"]
    assert metrics["mean_regret.gate"] == pytest.approx(regrets["gate"])
    assert metrics["mean_regret.always_ease"] == pytest.approx(regrets["always ease"])
    assert metrics["mean_ndcg.gate"] == pytest.approx(np.mean([r["champion_ndcg"] for r in rows]))
    popularity = np.mean([r["popularity_ndcg"] for r in rows])
    assert metrics["mean_ndcg.always_popularity"] == pytest.approx(popularity)
    assert metrics["gate_vs_popularity"] == pytest.approx(metrics["mean_ndcg.gate"] / popularity)


def _record_and_read(config: PipelineConfig, rows: list[dict]) -> dict:
    """Record the backtest's MLflow run; read back its artifacts, per-date table, metrics."""
    import pandas as pd

    from flows.backtest import policy_table
    from flows.backtest_report import record
    from tasks import tracking
    from tasks.storage.workspace import Workspace

    folder = config.workspace / "backtests" / "run"
    folder.mkdir(parents=True)
    table = policy_table(rows, config.train.models)
    params = {"start": rows[0]["date"], "end": rows[-1]["date"], "every_days": 7}
    _, run_id = record(config, rows, table, folder, "backtest-test", params)
    client = tracking.client_for(Workspace.at(config.workspace))
    local = client.download_artifacts(run_id, "backtest.csv", str(config.workspace))
    return {
        "artifacts": {a.path for a in client.list_artifacts(run_id)},
        "dates": list(pd.read_csv(local)["date"]),
        "metrics": client.get_run(run_id).data.metrics,
    }


def test_policy_table_means_regrets_and_the_ratio_to_popularity() -> None:
    from flows.backtest import policy_table
    from flows.backtest_report import policy_metrics, summary_text

    nan = float("nan")
    rows = [  # best = max of the candidates; the gate serves the champion
        {
            "champion_ndcg": 0.2,
            "regret": 0.1,
            "best_ndcg": 0.3,
            "popularity_ndcg": 0.1,
            "popularity_regret": 0.2,
            "ease_ndcg": 0.3,
            "ease_regret": 0.0,
        },
        {
            "champion_ndcg": 0.4,
            "regret": 0.0,
            "best_ndcg": 0.4,
            "popularity_ndcg": 0.3,
            "popularity_regret": 0.1,
            "ease_ndcg": 0.1,
            "ease_regret": 0.3,
        },
        {
            "champion_ndcg": nan,
            "regret": nan,
            "best_ndcg": 0.5,
            "popularity_ndcg": 0.5,
            "popularity_regret": 0.0,
            "ease_ndcg": 0.2,
            "ease_regret": 0.3,
        },  # no champion yet
    ]
    table = policy_table(rows, ["popularity", "ease"]).set_index("policy")
    assert list(table.index) == ["gate", "always popularity", "always ease"]
    assert table["nights"].tolist() == [2, 2, 2]
    assert table["mean_ndcg"].tolist() == pytest.approx([0.3, 0.2, 0.2])
    assert table["mean_regret"].tolist() == pytest.approx([0.05, 0.15, 0.15])
    assert table["vs_popularity"].tolist() == pytest.approx([1.5, 1.0, 1.0])
    metrics = policy_metrics(table.reset_index())
    assert metrics["gate_vs_popularity"] == pytest.approx(1.5)
    assert metrics["mean_regret.always_popularity"] == pytest.approx(0.15)
    text = summary_text(table.reset_index(), 10)
    assert "always ease" in text and "NDCG@10: 1.500 over 2 date(s)" in text


def test_the_backtest_nights_read_the_configured_relations(tmp_path) -> None:
    import pandas as pd

    from flows.backtest import snapshot_config

    edges = tmp_path / "friends.csv"
    edges.write_text("user_id,friend_id\na,b\n")
    config = PipelineConfig(
        workspace=tmp_path / "ws", ingest={"social": {"path": str(edges), "direction": "follows"}}
    )
    events = pd.DataFrame({"user_id": ["a"], "item_id": ["i"], "timestamp": [pd.Timestamp(0)]})
    night = snapshot_config(config, events, None, tmp_path / "bt")
    assert night.ingest.source == "files"
    assert (night.ingest.social.path, night.ingest.social.direction) == (edges, "follows")
