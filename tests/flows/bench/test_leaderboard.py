import json

import pandas as pd

from flows.bench.grids import GRIDS
from flows.bench.leaderboard import format_leaderboard, run_leaderboard, write_leaderboard
from tasks.sources.demo import generate_demo


def test_leaderboard_tunes_on_validation_and_ranks_by_test(tmp_path) -> None:
    events, _ = generate_demo(n_users=200, n_items=120, mean_interactions=20, seed=3)
    logged = []
    frame = run_leaderboard(
        events,
        None,
        "random",
        ["popularity", "ease"],
        k=10,
        log=lambda row, data: logged.append(row),
    )
    assert frame["model"].tolist() == ["ease", "popularity"]  # genre tastes: EASE wins
    assert frame.loc[0, "tried"] == len(GRIDS["ease"]) and frame.loc[1, "tried"] == 1
    assert frame.loc[0, "test_ndcg@10"] > frame.loc[1, "test_ndcg@10"]
    assert {
        "test_recall@10",
        "test_hit@10",
        "test_mrr@10",
        "test_coverage@10",
        "test_novelty@10",
        "valid_ndcg@10",
        "train_seconds",
    } <= set(frame.columns)
    assert [r["model"] for r in logged] == ["popularity", "ease"]
    csv_path, json_path = write_leaderboard(frame, tmp_path)
    assert pd.read_csv(csv_path)["model"].tolist() == ["ease", "popularity"]
    assert json.loads(json_path.read_text())[0]["params"]["l2"] > 0
    assert "ndcg@10" in format_leaderboard(frame, 10)


def test_leaderboard_json_is_strict_with_null_for_missing_figures(tmp_path) -> None:
    import math

    import numpy as np

    frame = pd.DataFrame(
        [
            {"model": "ease", "params": {"l2": 300.0}, "test_ndcg@10": 0.3, "epochs": None},
            {
                "model": "mult_dae",
                "params": {"hidden_dim": 600},
                "test_ndcg@10": np.float32(0.25),
                "epochs": np.int64(40),
            },
            {"model": "broken", "params": {}, "test_ndcg@10": math.inf, "epochs": math.nan},
        ]
    )
    _, json_path = write_leaderboard(frame, tmp_path)
    text = json_path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    rows = json.loads(text, parse_constant=refuse)
    assert [r["epochs"] for r in rows] == [None, 40, None]
    assert isinstance(rows[1]["epochs"], int)
    assert rows[2]["test_ndcg@10"] is None
    assert rows[1]["params"] == {"hidden_dim": 600}


def test_evaluation_reports_each_setting_and_its_validation_score() -> None:
    import logging

    events, _ = generate_demo(n_users=120, n_items=60, mean_interactions=15, seed=5)
    seen: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(dict(record.__dict__))

    logger = logging.getLogger("recpipe.progress")
    handler = Collect()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        run_leaderboard(events, None, "random", ["ease"], k=5)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    settings = [e for e in seen if e.get("event") == "setting"]
    fitted = [e for e in seen if e.get("event") == "fitted"]
    n = len(GRIDS["ease"])
    assert [(e["setting"], e["settings"]) for e in settings] == [(i, n) for i in range(1, n + 1)]
    assert all(e["model"] == "ease" and 0 <= e["valid"] <= 1 for e in fitted)
    assert len(fitted) == n


def test_refit_trains_the_chosen_epochs_without_early_stopping() -> None:
    from flows.bench.leaderboard import refit_params
    from models import MultDAE

    model = MultDAE(epochs=50, learning_rate=1.0)
    model.history_ = {"loss": [3.0, 2.0, 1.5, 1.4], "val_ndcg": [0.1, 0.3, 0.2, 0.25]}
    model.train_matrix_ = model.network_ = object()  # fitted, as far as the check goes
    params = {"epochs": 50, "learning_rate": 1.0}
    assert refit_params(params, model) == {"epochs": 2, "learning_rate": 1.0}
    assert refit_params({"l2": 300.0}, object()) == {"l2": 300.0}


def test_refit_fits_the_chosen_setting_on_train_and_valid() -> None:
    events, _ = generate_demo(n_users=150, n_items=80, mean_interactions=15, seed=4)
    plain = run_leaderboard(events, None, "random", ["item_knn"], k=10)
    refit = run_leaderboard(events, None, "random", ["item_knn"], k=10, refit=True)
    assert refit.loc[0, "params"] == plain.loc[0, "params"]
    assert bool(refit.loc[0, "refit"]) and not bool(plain.loc[0, "refit"])
    # same setting, more data: the test ranking changes
    assert refit.loc[0, "test_ndcg@10"] != plain.loc[0, "test_ndcg@10"]


def test_evaluate_prints_each_setting_and_epoch_while_it_runs() -> None:
    import io

    from flows.cli.evaluate import evaluation_progress

    events, _ = generate_demo(n_users=120, n_items=60, mean_interactions=15, seed=5)
    out = io.StringIO()  # not a terminal: one line per event
    grid = [{"factors": 4, "iterations": 3, "num_threads": 1}]
    with evaluation_progress(out):
        from flows.bench.leaderboard import evaluate_model, prepare

        evaluate_model("als", prepare(events, None, "random", 42), 5, grid=grid)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("als: setting 1/1 {")
    assert lines[1:5] == [f"  als setting 1/1: epoch {e}/3" for e in range(4)]
    assert lines[5].startswith("als: setting 1/1 valid ndcg@5 ")


def test_evaluate_prints_about_ten_epoch_lines_per_fit_when_piped() -> None:
    import io
    import logging

    from flows.cli.evaluate import evaluation_progress

    out = io.StringIO()
    with evaluation_progress(out):
        log = logging.getLogger("recpipe.progress")
        for epoch in range(101):
            log.info("", extra={"event": "epoch", "model": "m", "epoch": epoch, "epochs": 100})
    shown = [int(line.split("epoch ")[1].split("/")[0]) for line in out.getvalue().splitlines()]
    assert shown == list(range(0, 101, 10))


def test_every_model_has_a_grid_of_settings_it_accepts() -> None:
    from flows.bench.grids import GRIDS
    from models import MODEL_CLASSES, make_recommender

    def holds(held: dict, given: dict) -> bool:  # nested settings are held in full
        return all(
            holds(held[key], value) if isinstance(value, dict) else held[key] == value
            for key, value in given.items()
        )

    assert set(GRIDS) == set(MODEL_CLASSES)
    for name, settings in GRIDS.items():
        assert settings, name
        for params in settings:
            assert holds(make_recommender(name, **params).params, params), (name, params)


def test_evaluate_hands_the_relations_to_social_models_and_refuses_without_them() -> None:
    import pytest

    from tasks.errors import DataError

    events, _ = generate_demo(n_users=120, n_items=60, mean_interactions=15, seed=5)
    users = sorted(events["user_id"].unique())
    edges = pd.DataFrame(
        {"user_id": users[:-1], "friend_id": users[1:], "weight": 1.0}
    )  # a chain of friendships
    frame = run_leaderboard(events, None, "random", ["social_pop"], k=5, edges=edges)
    assert frame["model"].tolist() == ["social_pop"] and frame.loc[0, "inputs"] == "social"
    assert frame.loc[0, "test_ndcg@5"] > 0
    with pytest.raises(DataError, match="--social-path"):
        run_leaderboard(events, None, "random", ["ease", "social_pop"], k=5)
