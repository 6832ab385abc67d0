"""Promote: register tonight's models and let the gate decide who becomes ``champion``.

The gate itself is ``tasks/gate.py`` (pure functions): per-user figures of every model
on tonight's hold-out, paired with the current champion's (re-scored on the same users,
same items, same scoring path; a champion that is one of tonight's models, reused from an
earlier run of the date, keeps the figures it was just evaluated with), a paired
bootstrap over users, and a minimum of evidence. Every model is registered as a new
version either way; the decision, the figures, the interval, the number of users and the
p-value are tagged on the challenger's run, on the nightly parent run and on the version.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from tasks.config import EvaluateConfig
from tasks.gate import BASELINE, Decision, GateConfig, decide
from tasks.storage.cache import StageResult

if TYPE_CHECKING:
    from tasks.evaluate import ModelResult

__all__ = [
    "BASELINE",
    "Decision",
    "Promotion",
    "decide",
    "gate_config",
    "outcome",
    "promote",
    "promote_task",
]


def gate_config(config: EvaluateConfig) -> GateConfig:
    return GateConfig(
        tolerance=config.promotion_tolerance,
        min_users=config.min_users,
        min_events=config.min_events,
        resamples=config.bootstrap_resamples,
        confidence=config.confidence,
        seed=config.seed,
        refresh=config.refresh_same_model,
    )


def evidence_line(promotion: dict) -> str:
    """The gate's evidence: users, events, the interval of the difference, the p-value."""
    n = promotion.get("n_users")
    if n is None:
        return "n/a"
    line = f"{n} users, {promotion.get('n_events')} events"
    population = promotion.get("holdout_users")
    if population and population > n:
        line = (
            f"{n} of {population} hold-out users (a seeded sample sized for intervals of "
            f"+/-{promotion.get('sample_half_width')}), {promotion.get('n_events')} events"
        )
    if promotion.get("ci_low") is not None:
        line += (
            f"; {promotion['challenger']} - {promotion.get('compared_with')}: "
            f"[{promotion['ci_low']:+.4f}, {promotion['ci_high']:+.4f}], "
            f"p={promotion['p_value']:.3f}"
        )
    return line


def outcome(promotion: dict) -> str:
    """``kept`` (the challenger is the champion already), ``promoted``, ``rejected``,
    ``kept: too little evidence`` or ``promoted: too little evidence`` (a first night)."""
    if promotion.get("already_champion"):
        return "kept"
    if promotion.get("decision"):
        return promotion["decision"]
    return "promoted" if promotion.get("promote") else "rejected"


def per_user_scores(
    per_user: dict[str, Any], users: np.ndarray, column: str
) -> dict[str, np.ndarray]:
    """Each model's per-user ``column`` on the hold-out ``users`` (ascending codes), from
    the frames :func:`tasks.evaluate.evaluate_per_user` wrote; a user a model has no
    figure for counts 0."""
    out = {}
    for name, frame in per_user.items():
        values = frame.set_index("user_idx")[column].reindex(users).fillna(0.0)
        out[name] = values.to_numpy(dtype=np.float64)
    return out


def decision_tags(decision: Decision, already: bool, version: str, champion_ver: Any) -> dict:
    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.6f}"

    return {
        "promotion.decision": "kept" if already else decision.decision,
        "promotion.reason": decision.reason,
        "promotion.challenger": f"{decision.challenger} v{version}",
        "promotion.challenger_value": num(decision.challenger_value),
        "promotion.champion_value": num(decision.champion_value),
        "promotion.champion_version": champion_ver or "",
        "promotion.baseline_value": num(decision.baseline_value),
        "promotion.n_users": str(decision.n_users),
        "promotion.n_events": str(decision.n_events),
        "promotion.compared_with": decision.compared_with,
        "promotion.ci_low": num(decision.ci_low),
        "promotion.ci_high": num(decision.ci_high),
        "promotion.p_value": num(decision.p_value),
    }


class Promotion(StageResult):
    """The gate's decision and what serves tonight; the decision's figures (values, interval,
    p-value, users and events: :class:`tasks.gate.Decision`) ride along."""

    promote: bool
    decision: str
    challenger: str
    reason: str
    n_users: int = 0
    n_events: int = 0
    already_champion: bool
    registered_name: str
    challenger_version: str
    previous_champion: str | None
    champion_version: str | None
    serving_version: str | None
    move_alias: bool
    versions: dict[str, str]
    intervals: dict[str, list[float]]
    holdout_users: int
    sample_half_width: float | None = None
    # each content model's figure on the hold-out's items with no training event
    # (tasks/evaluate.py new_items_figures): reported beside the decision, not decided on
    new_items: dict[str, float] = Field(default_factory=dict)


class _PerUser:
    """Each model's per-user figures on tonight's hold-out: the file its evaluation wrote,
    or scored now (the hold-out is drawn once, when first needed)."""

    def __init__(
        self, client: Any, features_dir: str, config: EvaluateConfig, parent_run_id: str
    ) -> None:
        self.client, self.features_dir, self.config = client, features_dir, config
        self.parent_run_id = parent_run_id
        self._holdout: Any = None

    def _scored(self, model: Any, users: Any, items: Any) -> tuple[dict, Any]:
        from tasks.evaluate import evaluate_per_user, sampled_holdout

        if self._holdout is None:
            self._holdout = sampled_holdout(self.features_dir, self.config)
        return evaluate_per_user(model, users, items, self._holdout, self.config.k)

    def of_model(self, result: ModelResult) -> Any:
        import pandas as pd

        path = result.per_user_path
        if path and Path(path).is_file():
            return pd.read_parquet(path)
        from models.vocab import load_bundle

        return self._scored(*load_bundle(result.bundle_dir))[1]

    def of_champion(self, registered_name: str) -> Any:
        """The registered champion, re-scored on tonight's users (its figures on the
        parent run as ``champion.<metric>``)."""
        from tasks import tracking

        champion, _ = tracking.load_champion(self.client, registered_name)
        metrics, frame = self._scored(champion.model, champion.users, champion.items)
        tracking.log_metrics(
            self.client, self.parent_run_id, {f"champion.{m}": v for m, v in metrics.items()}
        )
        return frame


def register_all(client: Any, results: list[ModelResult], registered_name: str) -> dict:
    """Every model of the night as a new version of ``registered_name``: model -> version."""
    from models import declared_inputs
    from tasks import tracking
    from tasks.tracking import registry

    return {
        r.model: registry.register_version(
            client,
            r.model_uri,
            registered_name,
            r.run_id,
            tags={
                "model": r.model,
                "inputs": declared_inputs(r.model),
                **{tracking.mlflow_key(m): f"{v:.6f}" for m, v in r.metrics.items()},
            },
        )
        for r in results
    }


def holdout_reaches_back(features_dir: str) -> bool:
    """Whether tonight's hold-out may hold events an earlier night's champion was trained
    on: every strategy but a time window (each user's latest, returning or random events
    reach back before the last night). A window's events all come after its cutoff, past
    the data of a champion from an earlier night with the same window."""
    meta_path = Path(features_dir) / "meta.json"
    if not meta_path.is_file():
        return False
    holdout = json.loads(meta_path.read_text()).get("holdout") or {}
    return holdout.get("strategy", "window") != "window"


def from_a_later_night(client: Any, champion_run: str, parent_run_id: str) -> bool:
    """Whether the champion was trained on a later night than this one (a backfill of an
    older date): its data reaches past tonight's, hold-out included."""
    champion_date = client.get_run(champion_run).data.tags.get("run_date")
    tonight = client.get_run(parent_run_id).data.tags.get("run_date")
    return bool(champion_date and tonight and champion_date > tonight)


def non_personal_models(names: Collection[str]) -> set[str]:
    """Those of ``names`` that are registered models giving every user the same list."""
    from models import MODEL_CLASSES

    return {n for n in names if n in MODEL_CLASSES and not MODEL_CLASSES[n].personalized}


def promote(
    results: list[ModelResult],
    features_dir: str,
    config: EvaluateConfig,
    registered_name: str,
    workspace_root: str,
    parent_run_id: str,
) -> Promotion:
    """Register every model of the night and decide who serves (see the module docstring)."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    key = f"{config.primary_metric}@{config.k}"
    client = tracking.client_for(Workspace.at(workspace_root))
    versions = register_all(client, results, registered_name)
    figures = _PerUser(client, features_dir, config, parent_run_id)
    per_user = {r.model: figures.of_model(r) for r in results}
    champion_ver = registry.champion_version(client, registered_name)
    champion_frame, champion_model, champion_later = None, None, False
    if champion_ver is not None:
        champion_entry = client.get_model_version(registered_name, champion_ver)
        champion_run, champion_model = champion_entry.run_id, champion_entry.tags.get("model")
        champion_later = from_a_later_night(client, champion_run, parent_run_id)
        tonight = next((r for r in results if r.run_id == champion_run), None)
        if tonight is not None:  # reused from an earlier run of the date: its own figures
            champion_frame = per_user[tonight.model]
        else:
            champion_frame = figures.of_champion(registered_name)
    users = np.unique(next(iter(per_user.values()))["user_idx"].to_numpy())
    scores = per_user_scores(per_user, users, key)
    champion_scores = (
        None if champion_frame is None else per_user_scores({"c": champion_frame}, users, key)["c"]
    )
    n_events = int(results[0].metrics.get("n_events", len(users)))
    gate = gate_config(config)
    decision = decide(
        scores,
        champion_scores,
        key,
        gate,
        n_events,
        champion_model=champion_model,
        non_personal=non_personal_models({*scores, champion_model or ""}),
        champion_saw_holdout=champion_later or holdout_reaches_back(features_dir),
    )
    run_of = {r.model: r.run_id for r in results}
    intervals = mean_intervals(scores, gate)
    for name, (low, high) in intervals.items():
        tracking.log_metrics(client, run_of[name], {f"{key}.ci_low": low, f"{key}.ci_high": high})
    version = versions[decision.challenger]
    already = decision.promote and version == champion_ver  # a re-run that reused it
    if already:
        decision = replace(
            decision,
            reason=f"{decision.challenger} v{version} is the champion already; " + decision.reason,
        )
    for tag, value in decision_tags(decision, already, version, champion_ver).items():
        client.set_tag(run_of[decision.challenger], tag, value)
        client.set_tag(parent_run_id, tag, value)
        client.set_model_version_tag(registered_name, version, tag, value)
    new_items = {  # the new-items protocol beside the usual one: reported, not decided on
        r.model: r.metrics[f"new_items_{key}"] for r in results if f"new_items_{key}" in r.metrics
    }
    if new_items:
        reported = ", ".join(f"{m} {v:.4f}" for m, v in sorted(new_items.items()))
        client.set_tag(parent_run_id, "promotion.new_items", f"{key} on new items: {reported}")
    # The alias itself moves only once this run's tables commit (tasks/publish.py).
    serving = version if decision.promote else champion_ver
    return Promotion(
        **asdict(decision),
        already_champion=already,
        registered_name=registered_name,
        challenger_version=version,
        previous_champion=champion_ver,
        champion_version=serving,
        serving_version=serving,
        move_alias=bool(decision.promote and not already),
        versions=versions,
        intervals=intervals,
        holdout_users=int(results[0].metrics.get("holdout_users", decision.n_users)),
        sample_half_width=config.sample_half_width,
        new_items=new_items,
    )


promote_task = task(name="promote", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)(
    promote
)


def mean_intervals(scores: dict[str, np.ndarray], gate: GateConfig) -> dict[str, list[float]]:
    """Each model's bootstrap interval of its mean per-user figure (same resamples and
    confidence as the gate)."""
    from tasks.gate import paired_bootstrap

    out = {}
    for name, values in scores.items():
        cmp = paired_bootstrap(
            values, np.zeros_like(values), gate.resamples, gate.confidence, gate.seed
        )
        out[name] = [cmp.low, cmp.high]
    return out
