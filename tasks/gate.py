"""The promotion gate as pure functions: per-user figures in, a decision out.

Every model of the night is evaluated on the same hold-out users, so their per-user
figures (NDCG@10 by default) are paired. The gate:

* **enough evidence?** The hold-out must hold at least ``evaluate.min_users`` users and
  ``evaluate.min_events`` hold-out events. Below that no other model is promoted: the
  champion is kept (``kept: too little evidence``), or refreshed by its own model
  retrained tonight unless that is shown worse (see below); with no champion yet, the
  best model of the
  night by its mean (baseline included, so never one below the baseline) serves, with
  the warning (``promoted: too little evidence``).
* **no champion yet:** the best model of the night, the popularity baseline included.
* **otherwise** the challenger (tonight's best model other than the baseline) is promoted
  when its mean beats the popularity baseline's and the confidence interval of the mean
  of (challenger - champion) over users, by a paired bootstrap, lies above
  ``-promotion_tolerance``. A tie within noise (an interval that reaches below it) keeps
  the champion; except, with ``refresh`` (``evaluate.refresh_same_model``, on by
  default), when the challenger is the champion's own model retrained on newer data: it
  replaces the champion unless the interval lies wholly below ``-promotion_tolerance``
  (shown worse). A champion kept for ties alone would grow stale: it never learns the
  users and items that arrived after it was trained. For the same reason, when the
  challenger is another model and is not promoted, or the evidence is too little to
  decide, the champion's own model retrained tonight (when it is among the night's
  models) serves instead of the champion unless shown worse than it (and, on enough
  evidence, unless it no longer beats popularity); when the champion may have been
  trained on some of tonight's hold-out events (a hold-out of each user's latest or
  returning events, which reaches back before the champion's night, or a champion from
  a later night, met by a backfill of an older date), "shown worse" is
  not evidence (the comparison favours the champion) and the refresh serves on the
  popularity check alone. Likewise, when the champion is not
  personal (popularity, recent popularity: everyone gets the same list) and the
  challenger is (``non_personal`` names the models that are not), a tie goes to the
  challenger: equal accuracy within noise, and lists that differ per user (the catalog
  covered, not the same ten items for all). When no challenger beats tonight's
  baseline, the baseline is tonight's best candidate and is judged against the champion
  the same way (so it refreshes a popularity champion, and replaces a champion that is
  no better than popularity).

The bootstrap resamples users with replacement ``resamples`` times from a seeded
generator (percentile interval at ``confidence``); the p-value is two-sided, for a
mean difference of zero: ``2 * min(P(mean* <= 0), P(mean* >= 0))`` over the resamples.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

BASELINE = "popularity"


@dataclass(frozen=True)
class Comparison:
    """A paired comparison over users: the mean of (a - b), its interval, a p-value."""

    n_users: int
    mean: float
    low: float
    high: float
    p_value: float
    confidence: float
    resamples: int

    @property
    def interval(self) -> str:
        return (
            f"[{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%}, "
            f"{self.n_users} users, p={self.p_value:.3f})"
        )


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    cells: int = 4_000_000,
) -> Comparison:
    """Bootstrap of the mean of ``a - b`` (per-user figures of two models on the same
    users, same order), vectorised in blocks of about ``cells`` draws."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = diff.size
    if n == 0:
        nan = float("nan")
        return Comparison(0, nan, nan, nan, nan, confidence, resamples)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    block = max(1, cells // n)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        picks = rng.integers(0, n, size=(rows, n))
        means[start : start + rows] = diff[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    p = min(1.0, 2.0 * min(float(np.mean(means <= 0.0)), float(np.mean(means >= 0.0))))
    p = max(p, 1.0 / (resamples + 1))
    return Comparison(
        n, float(diff.mean()), float(low), float(high), float(p), confidence, resamples
    )


class _BootstrapOptions(TypedDict):
    """The keyword arguments of :func:`paired_bootstrap` taken from :class:`GateConfig`."""

    resamples: int
    confidence: float
    seed: int


@dataclass(frozen=True)
class GateConfig:
    tolerance: float = 0.002
    min_users: int = 200
    min_events: int = 500
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    refresh: bool = True


@dataclass(frozen=True)
class Decision:
    promote: bool
    decision: str  # promoted | rejected | kept: too little evidence | promoted: too little evidence
    challenger: str
    metric: str
    challenger_value: float
    champion_value: float | None
    baseline_value: float | None
    reason: str
    n_users: int = 0
    n_events: int = 0
    ci_low: float | None = None  # interval of (challenger - champion), or - baseline
    ci_high: float | None = None
    p_value: float | None = None
    compared_with: str = ""  # "champion", "popularity" or ""


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _best(means: dict[str, float], names: list[str]) -> str:
    """The best of ``names`` by mean (ties and non-finite means keep the earlier)."""

    def key(name: str) -> float:
        v = means[name]
        return v if math.isfinite(v) else -math.inf

    return max(names, key=key)


def decide(
    scores: dict[str, np.ndarray],
    champion: np.ndarray | None,
    metric: str,
    config: GateConfig,
    n_events: int | None = None,
    baseline: str = BASELINE,
    champion_model: str | None = None,
    non_personal: Collection[str] = (BASELINE,),
    champion_saw_holdout: bool = False,
) -> Decision:
    """The gate (module docstring). ``scores``: each model's per-user figures, all on the
    same users in the same order; ``champion``: the current champion's, or None;
    ``champion_model``: the champion's model name (``popularity``, ``ease``, ...);
    ``non_personal``: the models whose lists are the same for every user;
    ``champion_saw_holdout``: the champion may have been trained on some of tonight's
    hold-out events (a hold-out of each user's latest or returning events reaches back
    before the champion's night, or the champion is from a later night: a backfill), so
    its figures are biased in its favour: its own model retrained tonight then replaces
    it without having to be shown as good."""
    if not scores:
        raise ValueError("promote: no trained models to choose from")
    names = list(scores)
    means = {name: _mean(v) for name, v in scores.items()}
    n_users = len(next(iter(scores.values())))
    n_events = n_users if n_events is None else n_events
    base = means.get(baseline)
    short = []
    if n_users < config.min_users:
        short.append(f"{n_users} hold-out users < evaluate.min_users={config.min_users}")
    if n_events < config.min_events:
        short.append(f"{n_events} hold-out events < evaluate.min_events={config.min_events}")
    boot: _BootstrapOptions = {
        "resamples": config.resamples,
        "confidence": config.confidence,
        "seed": config.seed,
    }

    def made(promote: bool, decision: str, name: str, why: str, cmp=None, against="") -> Decision:
        return Decision(
            promote=promote,
            decision=decision,
            challenger=name,
            metric=metric,
            challenger_value=means[name],
            champion_value=None if champion is None else _mean(champion),
            baseline_value=base,
            reason=why,
            n_users=n_users,
            n_events=n_events,
            ci_low=None if cmp is None else cmp.low,
            ci_high=None if cmp is None else cmp.high,
            p_value=None if cmp is None else cmp.p_value,
            compared_with=against if cmp is not None else "",
        )

    def fmt(v: float | None) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.4f}"

    if champion is None:
        pick = _best(means, names)
        cmp = None
        if pick != baseline and baseline in scores:
            cmp = paired_bootstrap(scores[pick], scores[baseline], **boot)
        if not math.isfinite(means[pick]):
            return made(False, "rejected", pick, f"{pick} has no finite {metric}")
        best = f"{pick} {metric}={fmt(means[pick])} is the best of the night (baseline {fmt(base)})"
        if short:
            why = "too little evidence (" + "; ".join(short) + "); no champion yet: " + best
            return made(True, "promoted: too little evidence", pick, why, cmp, baseline)
        return made(True, "promoted", pick, "no champion yet; " + best, cmp, baseline)

    def own_refresh(why: str, decision: str = "promoted") -> Decision | None:
        """The champion's own model retrained tonight, when it is a candidate, serves
        instead of the champion that would be kept unless shown worse than it (and,
        on enough evidence, unless it no longer beats popularity)."""
        own = champion_model
        if not config.refresh or own is None or own not in scores:
            return None
        if not math.isfinite(means[own]):
            return None
        if not short and own != baseline and base is not None and means[own] <= base:
            return None
        vs = paired_bootstrap(scores[own], champion, **boot)
        if vs.high < -config.tolerance and not champion_saw_holdout:
            return None
        seen = (
            "the champion's figures are biased: it was trained on some of tonight's hold-out events"
            if champion_saw_holdout
            else "not shown worse"
        )
        why += (
            f"; {own} retrained on newer data serves (a refresh of the champion's model, "
            f"{seen}: vs champion {vs.interval})"
        )
        return made(True, decision, own, why, vs, "champion")

    others = [n for n in names if n != baseline] or names
    pick = _best(means, others)
    if short:
        why = "too little evidence (" + "; ".join(short) + ")"
        refreshed = own_refresh(why, "promoted: too little evidence")
        if refreshed is not None:
            return refreshed
        return made(False, "kept: too little evidence", pick, why + "; the champion keeps serving")
    if not math.isfinite(means[pick]):
        return made(False, "rejected", pick, f"{pick} has no finite {metric}")
    if pick != baseline and base is not None and means[pick] <= base:
        cmp = paired_bootstrap(scores[pick], scores[baseline], **boot)
        why = (
            f"{pick} {metric}={fmt(means[pick])} does not beat the popularity baseline "
            f"{fmt(base)}; difference {cmp.interval}"
        )
        # Then the baseline itself is tonight's best candidate: it serves when it is not
        # worse than the champion (or refreshes a baseline champion unless shown worse).
        vs = paired_bootstrap(scores[baseline], champion, **boot)
        refresh = config.refresh and champion_model == baseline and vs.high >= -config.tolerance
        if vs.low >= -config.tolerance or refresh:
            why += f"; {baseline} serves: vs champion {vs.interval}"
            return made(True, "promoted", baseline, why, vs, "champion")
        return own_refresh(why) or made(False, "rejected", pick, why, cmp, baseline)
    cmp = paired_bootstrap(scores[pick], champion, **boot)
    versus = (
        f"{pick} {metric}={fmt(means[pick])} vs champion {fmt(_mean(champion))}: "
        f"difference {cmp.interval}"
    )
    if cmp.low >= -config.tolerance:
        why = f"{versus} lies at or above -{config.tolerance}; beats popularity {fmt(base)}"
        return made(True, "promoted", pick, why, cmp, "champion")
    if config.refresh and champion_model == pick and cmp.high >= -config.tolerance:
        # (a champion that saw the hold-out is handled by own_refresh below)
        why = (
            f"{versus}: a refresh of the champion's model on newer data, not shown worse "
            f"(the interval reaches -{config.tolerance} or above); beats popularity {fmt(base)}"
        )
        return made(True, "promoted", pick, why, cmp, "champion")
    personal_tie = champion_model in non_personal and pick not in non_personal
    if personal_tie and cmp.high >= -config.tolerance:
        why = (
            f"{versus}: a personal model not shown worse than a champion that gives everyone "
            f"the same list (the interval reaches -{config.tolerance} or above); beats "
            f"popularity {fmt(base)}"
        )
        return made(True, "promoted", pick, why, cmp, "champion")
    why = f"{versus} reaches below -{config.tolerance}: not shown to be as good"
    refreshed = own_refresh(why)
    if refreshed is not None:
        return refreshed
    return made(False, "rejected", pick, why + "; champion kept", cmp, "champion")
