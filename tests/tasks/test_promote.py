"""The promotion gate and the registry on a real MLflow store in a temporary folder."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from tasks.config import EvaluateConfig
from tasks.gate import GateConfig, decide, paired_bootstrap
from tests.conftest import run_command

KEY = "ndcg@10"
LOOSE = GateConfig(tolerance=0.0, min_users=50, min_events=50, resamples=1000, seed=1)


def users(mean: float, n: int = 400, seed: int = 0) -> np.ndarray:
    """Per-user NDCG-like figures in [0, 1] with the given mean."""
    rng = np.random.default_rng(seed)
    return np.clip(mean + rng.normal(0.0, 0.15, n), 0.0, 1.0)


def test_first_night_a_challenger_below_popularity_is_not_promoted() -> None:
    scores = {"popularity": np.full(400, 0.30), "mult_dae": np.full(400, 0.20)}
    first = decide(scores, None, KEY, LOOSE)
    assert first.promote and first.decision == "promoted"
    assert first.challenger == "popularity"  # the baseline serves, never one below it
    assert "no champion yet" in first.reason


def test_first_night_the_best_model_including_the_baseline() -> None:
    scores = {"popularity": np.full(400, 0.20), "ease": np.full(400, 0.30)}
    first = decide(scores, None, KEY, LOOSE)
    assert first.promote and first.challenger == "ease"
    assert first.compared_with == "popularity"
    assert first.ci_low == pytest.approx(0.1) and first.ci_high == pytest.approx(0.1)


def test_a_tie_within_noise_keeps_a_fine_champion() -> None:
    champion = users(0.25, seed=1)
    # the same users, each moved by noise around zero: the interval straddles zero
    challenger = np.clip(champion + np.random.default_rng(2).normal(0, 0.1, 400), 0, 1)
    scores = {"popularity": np.full(400, 0.10), "mult_dae": challenger}
    tie = decide(scores, champion, KEY, GateConfig(tolerance=0.002, min_users=50, min_events=50))
    assert tie.ci_low < 0 < tie.ci_high, tie.reason
    assert not tie.promote and tie.decision == "rejected"
    assert "not shown to be as good" in tie.reason and tie.n_users == 400


def test_a_tie_goes_to_the_champions_own_model_retrained_unless_shown_worse() -> None:
    champion = users(0.25, seed=1)
    challenger = np.clip(champion + np.random.default_rng(2).normal(0, 0.1, 400), 0, 1)
    scores = {"popularity": np.full(400, 0.10), "ease": challenger}
    gate = GateConfig(tolerance=0.002, min_users=50, min_events=50)
    refresh = decide(scores, champion, KEY, gate, champion_model="ease")
    assert refresh.ci_low < 0 < refresh.ci_high
    assert refresh.promote and "a refresh of the champion's model" in refresh.reason
    worse = decide({**scores, "ease": champion - 0.05}, champion, KEY, gate, champion_model="ease")
    assert not worse.promote  # shown worse: the interval lies below -tolerance
    off = GateConfig(tolerance=0.002, min_users=50, min_events=50, refresh=False)
    assert not decide(scores, champion, KEY, off, champion_model="ease").promote


def test_a_tie_with_a_popularity_champion_goes_to_a_personal_model() -> None:
    champion = users(0.25, seed=1)
    ease = np.clip(champion + np.random.default_rng(2).normal(0, 0.1, 400), 0, 1)
    scores = {"popularity": np.full(400, 0.10), "ease": ease}
    gate = GateConfig(tolerance=0.002, min_users=50, min_events=50)
    tie = decide(
        scores,
        champion,
        KEY,
        gate,
        champion_model="recent_popularity",
        non_personal={"popularity", "recent_popularity"},
    )
    assert tie.ci_low < 0 < tie.ci_high
    assert tie.promote and tie.challenger == "ease" and "a personal model" in tie.reason
    # a personal champion keeps a tie; a personal model shown worse is not promoted
    assert not decide(scores, champion, KEY, gate, champion_model="mult_dae").promote
    worse = {**scores, "ease": champion - 0.05}
    assert not decide(worse, champion, KEY, gate, champion_model="popularity").promote
    # a non-personal challenger gets no such benefit
    other = {"popularity": np.full(400, 0.10), "recent_popularity": ease}
    assert not decide(
        other,
        champion,
        KEY,
        gate,
        champion_model="popularity",
        non_personal={"popularity", "recent_popularity"},
    ).promote


def test_a_champion_that_saw_the_holdout_is_refreshed_without_being_shown_as_good(
    tmp_path,
) -> None:
    import json

    from tasks.promote import holdout_reaches_back

    champion = users(0.30, seed=1)
    scores = {"popularity": np.full(400, 0.10), "blend": champion - 0.05}  # shown worse
    gate = GateConfig(tolerance=0.002, min_users=50, min_events=50)
    assert not decide(scores, champion, KEY, gate, champion_model="blend").promote
    biased = decide(scores, champion, KEY, gate, champion_model="blend", champion_saw_holdout=True)
    assert biased.promote and biased.challenger == "blend"
    assert "trained on some of tonight's hold-out events" in biased.reason
    # still never below popularity: here popularity itself serves
    weak = {"popularity": np.full(400, 0.40), "blend": champion - 0.05}
    below = decide(weak, champion, KEY, gate, champion_model="blend", champion_saw_holdout=True)
    assert below.promote and below.challenger == "popularity"
    # which hold-outs reach back before the champion's night
    for strategy, reaches in (("window", False), ("latest", True), ("returning", True)):
        (tmp_path / "meta.json").write_text(json.dumps({"holdout": {"strategy": strategy}}))
        assert holdout_reaches_back(str(tmp_path)) is reaches


def test_a_popularity_champion_is_refreshed_when_nothing_beats_popularity() -> None:
    champion = np.full(400, 0.30)
    scores = {"popularity": np.full(400, 0.31), "ease": np.full(400, 0.20)}
    refreshed = decide(scores, champion, KEY, LOOSE, champion_model="popularity")
    assert refreshed.promote and refreshed.challenger == "popularity"
    assert "popularity serves" in refreshed.reason
    strong = np.full(400, 0.40)  # a champion popularity does not match: kept
    assert not decide(scores, strong, KEY, LOOSE, champion_model="ease").promote


def test_a_clear_win_is_promoted_with_its_interval() -> None:
    champion = users(0.20, seed=3)
    scores = {"popularity": np.full(400, 0.10), "ease": champion + 0.05}
    win = decide(scores, champion, KEY, LOOSE)
    assert win.promote and win.decision == "promoted" and win.challenger == "ease"
    assert win.ci_low == pytest.approx(0.05) and win.p_value < 0.01
    assert win.compared_with == "champion"


def test_a_challenger_that_does_not_beat_popularity_is_rejected() -> None:
    champion = users(0.50, seed=4)
    scores = {"popularity": np.full(400, 0.30), "ease": np.full(400, 0.20)}
    below = decide(scores, champion, KEY, LOOSE)
    assert not below.promote and "popularity baseline" in below.reason
    # a champion no better than popularity gives way to it
    weak = users(0.10, seed=4)
    served = decide({"popularity": np.full(400, 0.30), "ease": weak + 0.1}, weak, KEY, LOOSE)
    assert served.promote and served.challenger == "popularity"
    assert "popularity serves" in served.reason and served.compared_with == "champion"


def test_too_little_evidence_keeps_the_champion_with_the_reason() -> None:
    champion = users(0.10, n=7, seed=5)
    scores = {"popularity": np.full(7, 0.0), "ease": champion + 0.5}
    strict = GateConfig(min_users=200, min_events=500)
    kept = decide(scores, champion, KEY, strict, n_events=28)
    assert not kept.promote and kept.decision == "kept: too little evidence"
    assert "7 hold-out users < evaluate.min_users=200" in kept.reason
    assert "28 hold-out events < evaluate.min_events=500" in kept.reason
    # a first night serves the best by validation, with the warning, never below the baseline
    first = decide({"popularity": np.full(7, 0.3), "ease": np.full(7, 0.1)}, None, KEY, strict)
    assert first.promote and first.challenger == "popularity"
    assert first.decision == "promoted: too little evidence"
    # the champion's own model retrained tonight refreshes it, unless shown worse
    own = decide(scores, champion, KEY, strict, n_events=28, champion_model="ease")
    assert own.promote and own.challenger == "ease"
    assert own.decision == "promoted: too little evidence" and "a refresh" in own.reason
    worse = {**scores, "ease": champion - 0.5}
    assert not decide(worse, champion, KEY, strict, n_events=28, champion_model="ease").promote


def test_a_tie_with_another_model_refreshes_the_champions_own_model() -> None:
    champion = users(0.25, seed=1)
    # ease: best by mean, tied with the champion; blend (the champion's model): tied too
    ease = champion + 0.008 + np.random.default_rng(2).normal(0, 0.1, 400)
    blend = champion - 0.004 + np.random.default_rng(3).normal(0, 0.1, 400)
    scores = {"popularity": np.full(400, 0.10), "ease": ease, "blend": blend}
    gate = GateConfig(tolerance=0.002, min_users=50, min_events=50)
    tie = decide(scores, champion, KEY, gate, champion_model="blend")
    assert tie.promote and tie.challenger == "blend"  # not ease, the best by mean
    assert "ease" in tie.reason and "a refresh of the champion's model" in tie.reason
    # the champion's own model shown worse: the champion stays
    worse = {**scores, "blend": champion - 0.05}
    kept = decide(worse, champion, KEY, gate, champion_model="blend")
    assert not kept.promote and kept.challenger == "ease" and "champion kept" in kept.reason
    # no refresh: the champion stays
    off = GateConfig(tolerance=0.002, min_users=50, min_events=50, refresh=False)
    assert not decide(scores, champion, KEY, off, champion_model="blend").promote


def test_paired_bootstrap_is_seeded_and_centred() -> None:
    a, b = users(0.3, seed=6), users(0.2, seed=7)
    one = paired_bootstrap(a, b, resamples=500, seed=3)
    assert one == paired_bootstrap(a, b, resamples=500, seed=3)
    assert one.low < one.mean < one.high and one.mean == pytest.approx(np.mean(a - b))
    same = paired_bootstrap(a, a, resamples=500)
    assert same.low == same.high == 0.0 and same.p_value == 1.0


def test_evaluate_config_holds_the_gate_settings() -> None:
    from tasks.promote import gate_config

    gate = gate_config(EvaluateConfig(min_users=300, promotion_tolerance=0.01))
    assert (gate.min_users, gate.tolerance, gate.resamples) == (300, 0.01, 1000)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A workspace with demo features and an MLflow experiment with a parent run."""
    from tasks import tracking
    from tasks.config import FeatureConfig
    from tasks.data.snapshot import save_features
    from tasks.features import build_features
    from tasks.sources.demo import generate_demo
    from tasks.storage.workspace import Workspace

    ws = Workspace.at(tmp_path_factory.mktemp("ws"))
    events, _ = generate_demo(n_users=150, n_items=80, mean_interactions=15, seed=5)
    features_dir = ws.features(__import__("datetime").date(2026, 1, 1))
    save_features(build_features(events, FeatureConfig(validation_days=7)), features_dir)
    client = tracking.client_for(ws)
    experiment_id = tracking.ensure_experiment(client, ws, "test")
    return ws, client, experiment_id, str(features_dir)


def night(store, dae_params: dict, tag: str) -> dict:
    """Train popularity + a Mult-DAE, evaluate both, run the gate; return the decision."""
    from datetime import date

    from tasks import tracking
    from tasks.config import TrainConfig
    from tasks.evaluate import evaluate
    from tasks.promote import promote
    from tasks.publishing.champion import ChampionMove, move_champion_after_publish
    from tasks.tracking import registry
    from tasks.train import train

    ws, client, experiment_id, features_dir = store
    parent = tracking.start_parent_run(client, experiment_id, f"night-{tag}", {})
    config = TrainConfig(mult_dae=dae_params)
    results = []
    for name in ["popularity", "mult_dae"]:
        trained = train(
            name,
            config,
            features_dir,
            str(ws.root / "models" / tag),
            str(ws.root),
            experiment_id,
            parent,
            {"data.fingerprint": "x"},
        )
        results.append(evaluate(trained, features_dir, GATE, str(ws.root)))
    decision = promote(results, features_dir, GATE, "rec", str(ws.root), parent)
    alias_before = registry.champion_version(client, "rec")
    if decision.move_alias:  # what publishing does once the night's tables commit
        move = ChampionMove("rec", decision.serving_version, decision.reason)
        move_champion_after_publish(ws.root, move, date(2026, 1, 1), None)
    return {"decision": decision, "results": results, "parent": parent, "before": alias_before}


GATE = EvaluateConfig(
    primary_metric="ndcg", k=10, promotion_tolerance=0.0, min_users=1, min_events=1
)
GOOD = {"epochs": 30, "hidden_dim": 32, "batch_size": 32, "learning_rate": 3e-3}
BAD = {"epochs": 1, "hidden_dim": 8, "batch_size": 256, "learning_rate": 1e-5, "dropout": 0.9}


@pytest.fixture(scope="module")
def nights(store):
    return [night(store, GOOD, "a"), night(store, BAD, "b"), night(store, GOOD, "c")]


def test_first_night_promotes_and_registers_every_model(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first = nights[0]["decision"]
    assert first.promote and first.champion_version == first.challenger_version
    assert nights[0]["before"] is None  # deciding does not move the alias; publishing does
    assert set(first.versions) == {"popularity", "mult_dae"}
    assert len(registry.list_versions(client, "rec")) == 6  # 2 models x 3 nights
    metrics = nights[0]["results"][0].metrics  # fewer users than a sample: all evaluated
    assert metrics["evaluated_users"] == metrics["holdout_users"] == first.n_users
    assert first.holdout_users == first.n_users


def test_worse_challenger_is_not_promoted_and_champion_keeps_serving(store, nights) -> None:
    _, client, _, _ = store
    first, second = nights[0]["decision"], nights[1]["decision"]
    assert not second.promote, second.reason
    assert second.champion_version == first.challenger_version
    assert second.challenger_value < second.champion_value
    # the champion was re-scored on the same hold-out and got the figure it had
    first_value = first.challenger_value
    assert second.champion_value == pytest.approx(first_value, rel=1e-6)
    run = client.get_run(nights[1]["results"][1].run_id)
    assert run.data.tags["promotion.decision"] == "rejected"
    assert run.data.tags["promotion.reason"] == second.reason
    assert client.get_run(nights[1]["parent"]).data.tags["promotion.decision"] == "rejected"


def test_better_or_equal_challenger_is_promoted_and_rollback_restores(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first, third = nights[0]["decision"], nights[2]["decision"]
    assert third.promote, third.reason
    assert third.serving_version == third.challenger_version
    # a known history whatever ran before: first, then third; rollback returns to first
    registry.set_champion(client, "rec", first.challenger_version, "test")
    registry.set_champion(client, "rec", third.challenger_version, "test")
    came_from, went_to = registry.rollback(client, "rec")
    assert (came_from, went_to) == (third.challenger_version, first.challenger_version)
    assert registry.champion_version(client, "rec") == first.challenger_version
    registry.set_champion(client, "rec", third.challenger_version, "manual")
    assert registry.champion_version(client, "rec") == third.challenger_version
    with pytest.raises(registry.RegistryError, match="no version '999'"):
        registry.set_champion(client, "rec", "999", "manual")


def test_runs_have_metrics_curves_and_plot_artifacts(store, nights) -> None:
    _, client, _, _ = store
    dae = nights[0]["results"][1]
    run = client.get_run(dae.run_id)
    assert {"ndcg_at_10", "recall_at_10", "train_seconds", "scoring_seconds"} <= set(
        run.data.metrics
    )
    assert len(client.get_metric_history(dae.run_id, "epoch_loss")) == GOOD["epochs"]
    assert [a.path for a in client.list_artifacts(dae.run_id, "plots")] == [
        "plots/training_curves.png"
    ]


def test_pyfunc_champion_recommends_in_a_fresh_process_without_recpipe(store, nights) -> None:
    """The served copy runs on the code shipped inside the MLflow model (``models`` and the
    ranking rules of ``tasks``), never on the pipeline's flows or an installed checkout; a
    version never published from ranks by the model alone and says so."""
    ws, _, _, _ = store
    code = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("flows", "expectations"):
                    raise ImportError("recpipe's pipeline is blocked in this test: " + name)

        sys.meta_path.insert(0, Block())
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({ws.mlflow_uri!r})
        model = mlflow.pyfunc.load_model("models:/rec@champion")
        out = model.predict(pd.DataFrame({{"user_id": ["u00001", "nobody"]}}), params={{"k": 4}})
        import models, tasks
        print(json.dumps({{"rows": out.to_dict("records"), "models_from": models.__file__,
                          "tasks_from": tasks.__file__}}))
        """
    )
    proc = run_command(
        [sys.executable, "-c", code],
        timeout=300,
        cwd=ws.root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = payload["rows"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert {r["user_id"] for r in rows} == {"u00001"}
    assert len({r["item_id"] for r in rows}) == 4
    assert {r["strategy"] for r in rows} == {"model"}  # no night published from it here
    for package in ("models_from", "tasks_from"):  # the copies shipped inside the model
        assert "/code/" in payload[package], payload[package]


def test_registering_the_same_run_twice_keeps_one_version(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first = nights[0]["results"][1]
    version = registry.register_version(client, first.model_uri, "rec", first.run_id, {})
    assert version == nights[0]["decision"].versions["mult_dae"]
    assert len(registry.list_versions(client, "rec")) == 6


def test_a_rerun_whose_challenger_is_the_champion_keeps_it(store, nights) -> None:
    from tasks.promote import promote
    from tasks.tracking import registry
    from tasks.tracking.runs import start_parent_run

    ws, client, experiment_id, features_dir = store
    third = nights[2]
    version = third["decision"].challenger_version
    registry.set_champion(client, "rec", version, "test")
    history = registry.champion_history(client, "rec")
    parent = start_parent_run(client, experiment_id, "night-c-again", {})
    again = promote(third["results"], features_dir, GATE, "rec", str(ws.root), parent)
    assert again.already_champion and again.promote
    assert again.challenger_version == again.champion_version == version
    assert again.champion_value == again.challenger_value  # its own figures, not re-scored
    assert "champion already" in again.reason
    assert registry.champion_history(client, "rec") == history  # no duplicate entry
    assert client.get_run(parent).data.tags["promotion.decision"] == "kept"


def test_the_alias_never_moves_for_a_date_older_than_the_newest_published(store, nights) -> None:
    from datetime import date

    from tasks.publishing.champion import ChampionMove, move_champion_after_publish
    from tasks.tracking import registry

    ws, client, _, _ = store
    live = registry.champion_version(client, "rec")
    other = nights[1]["decision"].challenger_version
    move = ChampionMove("rec", other, "a backfill's decision")
    said = move_champion_after_publish(ws.root, move, date(2026, 1, 1), date(2026, 1, 5))
    assert "older than the newest published date 2026-01-05" in said
    assert registry.champion_version(client, "rec") == live
    said = move_champion_after_publish(ws.root, move, date(2026, 1, 5), date(2026, 1, 5))
    assert said == f"champion moved to v{other}"
    assert registry.champion_version(client, "rec") == other
    registry.set_champion(client, "rec", live, "test cleanup")


def test_evidence_line_says_when_users_were_sampled() -> None:
    from tasks.promote import evidence_line

    promotion = {"n_users": 38415, "n_events": 91000, "holdout_users": 600000}
    line = evidence_line({**promotion, "sample_half_width": 0.005})
    assert line.startswith("38415 of 600000 hold-out users (a seeded sample sized for")
    assert "+/-0.005" in line
    assert evidence_line({**promotion, "holdout_users": 38415}).startswith("38415 users,")
