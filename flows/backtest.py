"""Backtest: replay the champion decision as of past dates and score it on what came next.

The source's events are written once to a snapshot in the backtest's own workspace; for
each date D (``start``, ``start + every``, ..., up to ``end``) a night runs on it as of
the day before D (only events before D; ``tasks/data/as_of.py``), through the same
:class:`flows.night.Night` stages the nightly runs, each called directly in this process
(no Prefect):

1. ingest, validate and the features (the hold-out sized by evidence,
   ``tasks/data/holdout.py``);
2. every model trained and evaluated per user on the hold-out;
3. the gate decides between the night's models and the champion carried from earlier
   nights (the registry's, re-scored on this night's hold-out), and the alias moves as
   publishing would move it;
4. every candidate (the night's models and the carried champion) is scored on the next
   period ``[D, D + every)``: each user with history before D and new items in it, their
   whole history before D as input, as the published scoring would rank.

Per night: the champion chosen and its next-period NDCG@K, the best candidate in
hindsight and its NDCG@K, and the regret (best - chosen). Fixed policies ("always
tonight's EASE", ...) are scored against the same best. ``flows/cli/backtest.py``
prints, writes CSV and tracks it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.config import PipelineConfig

if TYPE_CHECKING:
    from tasks.evaluate import Holdout, ModelResult
    from tasks.features import FeaturesResult
    from tasks.promote import Promotion


def backtest_dates(start: date, end: date, every_days: int) -> list[date]:
    if every_days < 1:
        raise ValueError(f"backtest: --every must be at least 1 day, got {every_days}")
    if end < start:
        raise ValueError(f"backtest: --end {end} is before --start {start}")
    days = (end - start).days // every_days
    return [start + timedelta(days=every_days * i) for i in range(days + 1)]


def next_period_holdout(
    interactions: pd.DataFrame, day: pd.Timestamp, until: pd.Timestamp
) -> Holdout:
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


def snapshot_config(
    config: PipelineConfig,
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    workspace: Path,
) -> PipelineConfig:
    """``config`` on the backtest's workspace, reading the events (and items) written once
    to ``<workspace>/source/`` with the "files" source, so every night re-reads the same
    history as of its date. The relations between users (``ingest.social``) are read as
    configured: edges carry no time, so every night sees the whole graph. The content
    models a night adds for new items (``train.content_models``) are left out."""
    from tasks.config import FilesConfig, IngestConfig

    folder = Path(workspace) / "source"
    folder.mkdir(parents=True, exist_ok=True)
    events = folder / "interactions.parquet"
    interactions.to_parquet(events, index=False)
    items_path = None
    if items is not None:
        items_path = folder / "items.parquet"
        items.to_parquet(items_path, index=False)
    files = FilesConfig(path=events, items_path=items_path)
    # the backtest measures the lists of the models it names: the content models the night
    # adds for new items are trained only when named
    train = config.train.model_copy(update={"content_models": []})
    return config.model_copy(
        update={
            "workspace": Path(workspace) / "nights",
            "ingest": IngestConfig(source="files", files=files, social=config.ingest.social),
            "train": train,
        }
    )


def replay(
    interactions: pd.DataFrame,
    dates: list[date],
    every_days: int,
    config: PipelineConfig,
    items_frame: pd.DataFrame | None = None,
    say: Callable[[str], None] = print,
    *,
    workspace: Path,
) -> list[dict]:
    """One row per date (module docstring); the nights run in ``workspace``, a folder of
    the backtest's own (its registry and champion are never the live ones)."""
    night_config = snapshot_config(config, interactions, items_frame, workspace)
    known: dict[str, tuple[str, str]] = {}  # registered version -> (model@date, bundle)
    rows = []
    for day in dates:
        start = time.perf_counter()
        stages: dict[str, float] = {}
        features, results, promotion = run_night(night_config, day, stages)
        tonight = {f"{r.model}@{day}": r.bundle_dir for r in results}
        known.update(
            {promotion.versions[r.model]: (f"{r.model}@{day}", r.bundle_dir) for r in results}
        )
        served, bundle = known.get(promotion.serving_version or "", ("", ""))
        candidates = {**tonight, served: bundle} if served else tonight
        cut = pd.Timestamp(day, tz="UTC")
        with _timed(stages, "next_period"):
            nxt = next_period_holdout(interactions, cut, cut + pd.Timedelta(days=every_days))
            next_ndcg = next_period_ndcg(candidates, nxt, config)
        users = int(nxt.relevant["user_idx"].nunique())
        row = night_row(day, features, promotion, served, users, next_ndcg, config.train.models)
        row["seconds"] = round(time.perf_counter() - start, 1)
        row.update({f"seconds_{name}": round(value, 1) for name, value in stages.items()})
        rows.append(row)
        say(night_line(row))
    return rows


@contextmanager
def _timed(stages: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start


def run_night(
    config: PipelineConfig, day: date, stages: dict[str, float] | None = None
) -> tuple[FeaturesResult, list[ModelResult], Promotion]:
    """The night that sees the events before ``day``, ingest to the gate, its stages
    called in this process; the champion alias moved as publishing would move it.
    ``stages`` receives the seconds each stage took (ingest, validate, features, train
    with evaluation, gate)."""
    from flows.night import Night
    from tasks.publishing.champion import ChampionMove, move_champion_after_publish

    stages = {} if stages is None else stages
    logger = logging.getLogger("recpipe.backtest")
    night = Night.open(config, day - timedelta(days=1), True, f"backtest-{day}", logger)
    with night.running():
        with _timed(stages, "ingest"):
            ingest = night.ingest()
        with _timed(stages, "validate"):
            night.validate(ingest)
        with _timed(stages, "features"):
            features = night.features()
        with _timed(stages, "train"):
            results = night.train_and_evaluate(features, ingest)
        with _timed(stages, "gate"):
            promotion = night.promote(results, features)
        if promotion.move_alias:
            # move_alias only when promoted, and then serving_version is the challenger's
            assert promotion.serving_version is not None
            move = ChampionMove(
                promotion.registered_name, promotion.serving_version, promotion.reason
            )
            move_champion_after_publish(night.ws.root, move, night.run_date, None)
    return features, results, promotion


def next_period_ndcg(
    bundles: dict[str, str], holdout: Holdout, config: PipelineConfig
) -> dict[str, float]:
    """Each candidate's (label -> saved bundle) NDCG@K on the next period's hold-out."""
    from models.vocab import load_bundle
    from tasks.evaluate import evaluate_per_user

    if holdout.relevant.empty:
        return {}
    k = config.evaluate.k
    key = f"{config.evaluate.primary_metric}@{k}"
    return {
        label: evaluate_per_user(*load_bundle(bundle), holdout, k)[0][key]
        for label, bundle in bundles.items()
    }


def night_row(
    day: date,
    features: FeaturesResult,
    promotion: Promotion,
    served: str,
    next_users: int,
    next_ndcg: dict[str, float],
    models: Sequence[str],
) -> dict[str, Any]:
    """The night's decision, the champion it serves and the best in hindsight, and the
    regret of the gate and of each fixed policy."""
    nan = float("nan")
    best = max(next_ndcg, key=next_ndcg.__getitem__) if next_ndcg else ""
    row: dict[str, Any] = {
        "date": day.isoformat(),
        "holdout": features.holdout.get("strategy") if features.holdout else "",
        "holdout_users": promotion.n_users,
        "holdout_events": promotion.n_events,
        "decision": promotion.decision,
        "challenger": promotion.challenger,
        "ci_low": promotion.summary().get("ci_low"),
        "ci_high": promotion.summary().get("ci_high"),
        "p_value": promotion.summary().get("p_value"),
        "champion": served,
        "next_users": next_users,
        "champion_ndcg": next_ndcg.get(served, nan),
        "best": best,
        "best_ndcg": next_ndcg.get(best, nan),
    }
    row["regret"] = row["best_ndcg"] - row["champion_ndcg"]
    for name in models:
        value = next_ndcg.get(f"{name}@{day}", nan)
        row[f"{name}_ndcg"] = value
        row[f"{name}_regret"] = row["best_ndcg"] - value
    return row


def _f(value: float | None) -> str:
    return "  n/a " if value is None or not math.isfinite(value) else f"{value:.4f}"


def night_line(row: dict) -> str:
    return (
        f"{row['date']}  hold-out {row['holdout']} {row['holdout_users']} users  "
        f"{row['decision']:<28} champion {row['champion']:<22} next {_f(row['champion_ndcg'])}  "
        f"best {row['best']:<22} {_f(row['best_ndcg'])}  regret {_f(row['regret'])}  "
        f"({row['next_users']} users next period, {row['seconds']} s)"
    )


def policy_columns(models: Sequence[str]) -> dict[str, str]:
    """Policy name -> the per-date column prefix of its next-period NDCG and regret: the
    gate serves ``champion`` (NDCG ``champion_ndcg``, regret ``regret``), "always X"
    serves tonight's X (``X_ndcg``, ``X_regret``)."""
    return {"gate": "champion", **{f"always {m}": m for m in models}}


def _scored(rows: list[dict], models: Sequence[str]) -> pd.DataFrame:
    """The nights where every policy has a next-period figure."""
    frame = pd.DataFrame(rows)
    needed = [f"{p}_ndcg" for p in policy_columns(models).values()]
    return frame.dropna(subset=[c for c in needed if c in frame] or None)


def policy_regrets(rows: list[dict], models: list[str]) -> dict[str, float]:
    """Mean regret of the gate and of each fixed policy over the nights all can be scored."""
    scored = _scored(rows, models)
    return {
        name: float(scored["regret" if name == "gate" else f"{prefix}_regret"].mean())
        for name, prefix in policy_columns(models).items()
    }


def policy_table(rows: list[dict], models: Sequence[str]) -> pd.DataFrame:
    """One row per policy (the gate, then "always X" per model) over the nights all can be
    scored: ``mean_ndcg`` (next-period NDCG@K), ``mean_regret``, ``nights``, and
    ``vs_popularity``, the policy's mean NDCG over always-popularity's (NaN without a
    popularity candidate)."""
    scored = _scored(rows, models)
    table = pd.DataFrame(
        [
            {
                "policy": name,
                "mean_ndcg": float(scored[f"{prefix}_ndcg"].mean()),
                "mean_regret": float(
                    scored["regret" if name == "gate" else f"{prefix}_regret"].mean()
                ),
                "nights": len(scored),
            }
            for name, prefix in policy_columns(models).items()
        ]
    )
    popularity = table.loc[table["policy"] == "always popularity", "mean_ndcg"]
    base = float(popularity.iloc[0]) if len(popularity) else float("nan")
    table["vs_popularity"] = table["mean_ndcg"] / base if base else float("nan")
    return table
