"""Backtest: replay the champion decision as of past dates and score it on what came next.

For each date D (``start``, ``start + every``, ..., up to ``end``):

1. the features as the nightly builds them from the events before D (the hold-out sized
   by evidence, ``tasks/data/holdout.py``);
2. every model trained on the training part (``tasks/train.py``'s ``train_model``) and
   evaluated per user on the hold-out (``tasks/evaluate.py``);
3. the gate (``tasks/gate.py``) decides between the night's models and the champion
   carried from earlier nights (re-scored on this night's hold-out), as the nightly does;
4. every candidate (the night's models and the carried champion) is scored on the next
   period ``[D, D + every)``: each user with history before D and new items in it, their
   whole history before D as input, as the published scoring would rank.

Per night: the champion chosen and its next-period NDCG@K, the best candidate in
hindsight and its NDCG@K, and the regret (best - chosen). Fixed policies ("always
tonight's EASE", ...) are scored against the same best. Everything runs in this process
(no Prefect, no registry); ``flows/cli/backtest.py`` prints, writes CSV and tracks it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import PipelineConfig


@dataclass
class Champion:
    label: str  # model@date it was trained
    model: Any
    users: Any
    items: Any


def backtest_dates(start: date, end: date, every_days: int) -> list[date]:
    if every_days < 1:
        raise ValueError(f"backtest: --every must be at least 1 day, got {every_days}")
    if end < start:
        raise ValueError(f"backtest: --end {end} is before --start {start}")
    days = (end - start).days // every_days
    return [start + timedelta(days=every_days * i) for i in range(days + 1)]


def next_period_holdout(interactions: pd.DataFrame, day: pd.Timestamp, until: pd.Timestamp):
    """The users with history before ``day`` and items new to them in ``[day, until)``."""
    from models.vocab import IdVocabulary
    from tasks.data.snapshot import FeatureSet
    from tasks.evaluate import holdout_from_features
    from tasks.features import encode

    ts = interactions["timestamp"]
    before, after = interactions[ts < day], interactions[(ts >= day) & (ts < until)]
    users = IdVocabulary(pd.concat([before["user_id"], after["user_id"]]))
    items = IdVocabulary(pd.concat([before["item_id"], after["item_id"]]))
    features = FeatureSet(
        users, items, encode(before, users, items), encode(after, users, items), day
    )
    return holdout_from_features(features)


def replay(
    interactions: pd.DataFrame,
    dates: list[date],
    every_days: int,
    config: PipelineConfig,
    items_frame: pd.DataFrame | None = None,
    say: Callable[[str], None] = print,
) -> list[dict]:
    """One row per date (module docstring)."""
    from models import make_recommender
    from tasks.data.holdout import with_evidence
    from tasks.data.model_inputs import build_fit_inputs
    from tasks.evaluate import evaluate_bundle, evaluate_per_user, holdout_from_features
    from tasks.features import build_features
    from tasks.gate import decide
    from tasks.promote import gate_config, per_user_scores
    from tasks.train import model_params, train_model

    k = config.evaluate.k
    key = f"{config.evaluate.primary_metric}@{k}"
    feature_config = with_evidence(config.features, config.evaluate)
    champion: Champion | None = None
    rows = []
    for day in dates:
        start = time.perf_counter()
        cut = pd.Timestamp(day, tz="UTC")
        until = cut + pd.Timedelta(days=every_days)
        before = interactions[interactions["timestamp"] < cut]
        features = build_features(before, feature_config)
        holdout = holdout_from_features(features)
        trained, per_user = {}, {}
        for name in config.train.models:
            needs = make_recommender(name, **model_params(name, config.train)).fit_inputs
            inputs = build_fit_inputs(
                features, items_frame, config.train.early_stopping_days, needs
            )
            trained[name], _ = train_model(name, config.train, inputs)
            _, per_user[name] = evaluate_per_user(
                trained[name], features.users, features.items, holdout, k
            )
        users = np.unique(holdout.relevant["user_idx"].to_numpy())
        scores = per_user_scores(per_user, users, key)
        carried = None
        if champion is not None:
            _, frame = evaluate_per_user(champion.model, champion.users, champion.items, holdout, k)
            carried = per_user_scores({"c": frame}, users, key)["c"]
        decision = decide(
            scores,
            carried,
            key,
            gate_config(config.evaluate),
            len(holdout.relevant),
            champion_model=None if champion is None else champion.label.split("@")[0],
        )
        if decision.promote:
            champion = Champion(
                f"{decision.challenger}@{day}",
                trained[decision.challenger],
                features.users,
                features.items,
            )
        # The next period: every candidate of the night, and the champion that serves.
        nxt = next_period_holdout(interactions, cut, until)
        next_ndcg: dict[str, float] = {}
        if not nxt.relevant.empty:
            for name, model in trained.items():
                metrics = evaluate_bundle(model, features.users, features.items, nxt, k)
                next_ndcg[f"{name}@{day}"] = metrics[key]
            if champion is not None and champion.label not in next_ndcg:
                metrics = evaluate_bundle(champion.model, champion.users, champion.items, nxt, k)
                next_ndcg[champion.label] = metrics[key]
        best = max(next_ndcg, key=next_ndcg.get) if next_ndcg else ""
        served = champion.label if champion is not None else ""
        nan = float("nan")
        row = {
            "date": day.isoformat(),
            "holdout": features.holdout.get("strategy") if features.holdout else "",
            "holdout_users": decision.n_users,
            "holdout_events": decision.n_events,
            "decision": decision.decision,
            "challenger": decision.challenger,
            "ci_low": decision.ci_low,
            "ci_high": decision.ci_high,
            "p_value": decision.p_value,
            "champion": served,
            "next_users": int(nxt.relevant["user_idx"].nunique()),
            "champion_ndcg": next_ndcg.get(served, nan),
            "best": best,
            "best_ndcg": next_ndcg.get(best, nan),
        }
        row["regret"] = row["best_ndcg"] - row["champion_ndcg"]
        for name in config.train.models:
            value = next_ndcg.get(f"{name}@{day}", nan)
            row[f"{name}_ndcg"] = value
            row[f"{name}_regret"] = row["best_ndcg"] - value
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
        say(night_line(row))
    return rows


def _f(value: float | None) -> str:
    return "  n/a " if value is None or not math.isfinite(value) else f"{value:.4f}"


def night_line(row: dict) -> str:
    return (
        f"{row['date']}  hold-out {row['holdout']} {row['holdout_users']} users  "
        f"{row['decision']:<28} champion {row['champion']:<22} next {_f(row['champion_ndcg'])}  "
        f"best {row['best']:<22} {_f(row['best_ndcg'])}  regret {_f(row['regret'])}  "
        f"({row['next_users']} users next period, {row['seconds']} s)"
    )


def policy_regrets(rows: list[dict], models: list[str]) -> dict[str, float]:
    """Mean regret of the gate and of each fixed policy over the nights all can be scored."""
    frame = pd.DataFrame(rows)
    columns = {"gate": "regret", **{f"always {m}": f"{m}_regret" for m in models}}
    scored = frame.dropna(subset=list(columns.values()))
    return {name: float(scored[column].mean()) for name, column in columns.items()}
