"""The promotion gate and the registry on a real MLflow store in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tasks.config import EvaluateConfig
from tasks.promote import decide, pick_challenger


def test_decide_rules() -> None:
    first = decide("mult_dae", 0.20, None, 0.30, 0.0, "ndcg@10")
    assert first.promote and "no champion yet" in first.reason
    below_baseline = decide("mult_dae", 0.20, 0.10, 0.25, 0.0, "ndcg@10")
    assert not below_baseline.promote and "popularity baseline" in below_baseline.reason
    worse = decide("mult_dae", 0.20, 0.25, 0.10, 0.01, "ndcg@10")
    assert not worse.promote and "below the champion" in worse.reason
    within_tolerance = decide("mult_dae", 0.245, 0.25, 0.10, 0.01, "ndcg@10")
    assert within_tolerance.promote
    assert not decide("mult_dae", float("nan"), 0.2, 0.1, 0.0, "ndcg@10").promote


def test_pick_challenger_skips_the_baseline_unless_alone() -> None:
    results = [
        {"model": "popularity", "metrics": {"ndcg@10": 0.9}},
        {"model": "mult_dae", "metrics": {"ndcg@10": 0.2}},
        {"model": "other", "metrics": {"ndcg@10": float("nan")}},
    ]
    assert pick_challenger(results, "ndcg@10")["model"] == "mult_dae"
    assert pick_challenger(results[:1], "ndcg@10")["model"] == "popularity"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A workspace with demo features and an MLflow experiment with a parent run."""
    from tasks import tracking
    from tasks.config import FeatureConfig
    from tasks.features import build_features, save_features
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
    from tasks.evaluate import evaluate_task
    from tasks.promote import move_champion_after_publish, promote_task
    from tasks.publish import ChampionMove
    from tasks.tracking import registry
    from tasks.train import train_task

    ws, client, experiment_id, features_dir = store
    parent = tracking.start_parent_run(client, experiment_id, f"night-{tag}", {})
    config = TrainConfig(mult_dae=dae_params)
    results = []
    for name in ["popularity", "mult_dae"]:
        trained = train_task.fn(
            name,
            config,
            features_dir,
            str(ws.root / "models" / tag),
            str(ws.root),
            experiment_id,
            parent,
            {"data.fingerprint": "x"},
        )
        results.append(evaluate_task.fn(trained, features_dir, 10, str(ws.root)))
    decision = promote_task.fn(results, features_dir, GATE, "rec", str(ws.root), parent)
    alias_before = registry.champion_version(client, "rec")
    if decision["move_alias"]:  # what publishing does once the night's tables commit
        move = ChampionMove("rec", decision["serving_version"], decision["reason"])
        move_champion_after_publish(ws.root, move, date(2026, 1, 1), None)
    return {"decision": decision, "results": results, "parent": parent, "before": alias_before}


GATE = EvaluateConfig(primary_metric="ndcg", k=10, promotion_tolerance=0.0)
GOOD = {"epochs": 30, "hidden_dim": 32, "batch_size": 32, "learning_rate": 3e-3}
BAD = {"epochs": 1, "hidden_dim": 8, "batch_size": 256, "learning_rate": 1e-5, "dropout": 0.9}


@pytest.fixture(scope="module")
def nights(store):
    return [night(store, GOOD, "a"), night(store, BAD, "b"), night(store, GOOD, "c")]


def test_first_night_promotes_and_registers_every_model(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first = nights[0]["decision"]
    assert first["promote"] and first["champion_version"] == first["challenger_version"]
    assert nights[0]["before"] is None  # deciding does not move the alias; publishing does
    assert set(first["versions"]) == {"popularity", "mult_dae"}
    assert len(registry.list_versions(client, "rec")) == 6  # 2 models x 3 nights


def test_worse_challenger_is_not_promoted_and_champion_keeps_serving(store, nights) -> None:
    _, client, _, _ = store
    first, second = nights[0]["decision"], nights[1]["decision"]
    assert not second["promote"], second["reason"]
    assert second["champion_version"] == first["challenger_version"]
    assert second["challenger_value"] < second["champion_value"]
    # the champion was re-scored on the same hold-out and got the figure it had
    first_value = first["challenger_value"]
    assert second["champion_value"] == pytest.approx(first_value, rel=1e-6)
    run = client.get_run(nights[1]["results"][1]["run_id"])
    assert run.data.tags["promotion.decision"] == "rejected"
    assert run.data.tags["promotion.reason"] == second["reason"]
    assert client.get_run(nights[1]["parent"]).data.tags["promotion.decision"] == "rejected"


def test_better_or_equal_challenger_is_promoted_and_rollback_restores(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first, third = nights[0]["decision"], nights[2]["decision"]
    assert third["promote"], third["reason"]
    assert registry.champion_version(client, "rec") == third["challenger_version"]
    came_from, went_to = registry.rollback(client, "rec")
    assert (came_from, went_to) == (third["challenger_version"], first["challenger_version"])
    assert registry.champion_version(client, "rec") == first["challenger_version"]
    with pytest.raises(registry.RegistryError, match="nothing to roll back to"):
        registry.rollback(client, "rec")
    registry.set_champion(client, "rec", third["challenger_version"], "manual")
    assert registry.champion_version(client, "rec") == third["challenger_version"]
    with pytest.raises(registry.RegistryError, match="no version '999'"):
        registry.set_champion(client, "rec", "999", "manual")


def test_runs_have_metrics_curves_and_plot_artifacts(store, nights) -> None:
    _, client, _, _ = store
    dae = nights[0]["results"][1]
    run = client.get_run(dae["run_id"])
    assert {"ndcg_at_10", "recall_at_10", "train_seconds", "scoring_seconds"} <= set(
        run.data.metrics
    )
    assert len(client.get_metric_history(dae["run_id"], "epoch_loss")) == GOOD["epochs"]
    assert [a.path for a in client.list_artifacts(dae["run_id"], "plots")] == [
        "plots/training_curves.png"
    ]


def test_pyfunc_champion_recommends_in_a_fresh_process_without_recpipe(store, nights) -> None:
    ws, _, _, _ = store
    code = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tasks", "flows"):
                    raise ImportError("recpipe's own packages are blocked in this test: " + name)

        sys.meta_path.insert(0, Block())
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({ws.mlflow_uri!r})
        model = mlflow.pyfunc.load_model("models:/rec@champion")
        out = model.predict(pd.DataFrame({{"user_id": ["u00001", "nobody"]}}), params={{"k": 4}})
        import models
        print(json.dumps({{"rows": out.to_dict("records"), "models_from": models.__file__}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ws.root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = payload["rows"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert {r["user_id"] for r in rows} == {"u00001"}
    assert len({r["item_id"] for r in rows}) == 4
    assert "code" in payload["models_from"]  # the copy shipped inside the MLflow model


def test_registering_the_same_run_twice_keeps_one_version(store, nights) -> None:
    from tasks.tracking import registry

    _, client, _, _ = store
    first = nights[0]["results"][1]
    version = registry.register_version(client, first["model_uri"], "rec", first["run_id"], {})
    assert version == nights[0]["decision"]["versions"]["mult_dae"]
    assert len(registry.list_versions(client, "rec")) == 6


def test_a_rerun_whose_challenger_is_the_champion_keeps_it(store, nights) -> None:
    from tasks.promote import promote_task
    from tasks.tracking import registry
    from tasks.tracking.runs import start_parent_run

    ws, client, experiment_id, features_dir = store
    third = nights[2]
    version = third["decision"]["challenger_version"]
    registry.set_champion(client, "rec", version, "test")
    history = registry.champion_history(client, "rec")
    parent = start_parent_run(client, experiment_id, "night-c-again", {})
    again = promote_task.fn(third["results"], features_dir, GATE, "rec", str(ws.root), parent)
    assert again["already_champion"] and again["promote"]
    assert again["challenger_version"] == again["champion_version"] == version
    assert again["champion_value"] == again["challenger_value"]  # its own figures, not re-scored
    assert "champion already" in again["reason"]
    assert registry.champion_history(client, "rec") == history  # no duplicate entry
    assert client.get_run(parent).data.tags["promotion.decision"] == "kept"


def test_the_alias_never_moves_for_a_date_older_than_the_newest_published(store, nights) -> None:
    from datetime import date

    from tasks.promote import move_champion_after_publish
    from tasks.publish import ChampionMove
    from tasks.tracking import registry

    ws, client, _, _ = store
    live = registry.champion_version(client, "rec")
    other = nights[1]["decision"]["challenger_version"]
    move = ChampionMove("rec", other, "a backfill's decision")
    said = move_champion_after_publish(ws.root, move, date(2026, 1, 1), date(2026, 1, 5))
    assert "older than the newest published date 2026-01-05" in said
    assert registry.champion_version(client, "rec") == live
    said = move_champion_after_publish(ws.root, move, date(2026, 1, 5), date(2026, 1, 5))
    assert said == f"champion moved to v{other}"
    assert registry.champion_version(client, "rec") == other
    registry.set_champion(client, "rec", live, "test cleanup")
