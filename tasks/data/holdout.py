"""The hold-out that decides promotion, sized by evidence (``FeatureConfig``).

A hold-out of 7 users can't tell two models apart. The split is chosen so that it holds
at least ``min_users`` users with history before it and ``min_events`` of their events:

1. **window**: the last ``validation_days`` of data, widened back in time (doubling, up to
   ``max_validation_days``) while the window keeps at most ``max_holdout_share`` of the
   events (the first window is always allowed: the training data needs the rest);
2. **latest**: when no window does (users active in short bursts, as in many rating
   datasets), each active user's latest events: the last ``latest_share`` (at least one)
   of the events of every user with ``latest_min_events`` or more events and one in the
   last ``max_validation_days``.

The choice is made from small summaries of each user partition (hourly histograms of
events and of users' first and last events), so it scales with the partitions; the
counts it estimates ignore repeated items, and the snapshot records the exact ones.
When neither way reaches the minimum, the split with more users is used and marked
``enough: false``: the gate then keeps the champion (``kept: too little evidence``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.data.positives import positive_mask

if TYPE_CHECKING:
    from tasks.config import EvaluateConfig, FeatureConfig

_EPOCH = pd.Timestamp(0, tz="UTC")


def _hours(timestamps: pd.Series) -> np.ndarray:
    """Whole hours since the epoch (UTC) of each timestamp."""
    since = pd.Series(pd.to_datetime(timestamps, utc=True)) - _EPOCH
    return (since // pd.Timedelta(hours=1)).to_numpy(np.int64)


def _histogram(keys: np.ndarray, *weights: np.ndarray) -> list[np.ndarray]:
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = [np.bincount(inverse, weights=w, minlength=len(uniq)).astype(np.int64) for w in weights]
    return [uniq.astype(np.int64), *sums]


def partition_stats(
    frame: pd.DataFrame,
    latest_share: float,
    latest_min_events: int,
    positive: np.ndarray | None = None,
) -> dict:
    """The summaries of one user partition (``user_id``, ``timestamp``; all of each user's
    events) that :func:`choose_holdout` needs. ``positive``: which events count as
    positives (tasks/data/positives.py): only those make a user evaluable and count as
    hold-out events; the share of the hold-out counts every event."""
    hours = _hours(frame["timestamp"])
    pos = np.ones(len(hours), bool) if positive is None else np.asarray(positive, bool)
    events = pd.DataFrame({"user": frame["user_id"].to_numpy(), "hour": hours, "pos": pos})
    events = events.sort_values(["user", "hour"], kind="stable")
    users = events.groupby("user", sort=True)
    first, n = users["hour"].min().to_numpy(), users["hour"].size().to_numpy()
    n_pos = users["pos"].sum().to_numpy().astype(float)
    last_pos = events["hour"].where(events["pos"]).groupby(events["user"]).max()
    last_pos = np.where(np.isnan(last_pos.to_numpy(float)), first, last_pos.to_numpy(float))
    # the latest strategy: the user's last max(1, share * n) events, of which the positives
    from_end = users.cumcount(ascending=False).to_numpy()
    size = users["hour"].transform("size").to_numpy()
    held_rows = (size >= latest_min_events) & (
        from_end < np.maximum(1, np.floor(latest_share * size))
    )
    held = (
        pd.Series(held_rows & events["pos"].to_numpy())
        .groupby(events["user"].to_numpy())
        .sum()
        .to_numpy()
        .astype(float)
    )
    last_any = users["hour"].max().to_numpy()
    eligible = ((n >= latest_min_events) & (held > 0)).astype(float)
    ones = np.ones(len(first))
    return {
        "events": _histogram(hours, np.ones(len(hours)), pos.astype(float)),
        "first": _histogram(first, ones, n_pos),
        "last": _histogram(last_pos.astype(np.int64), ones),
        "latest": _histogram(last_any, eligible, held),
    }


def merge_stats(parts: list[dict]) -> dict:
    """One partition's summaries from many (sums by hour)."""
    out = {}
    for name in ("events", "first", "last", "latest"):
        pieces = [p[name] for p in parts if len(p[name][0])]
        if not pieces:
            out[name] = [np.zeros(0, np.int64)] * len(parts[0][name])
            continue
        keys = np.concatenate([p[0] for p in pieces])
        columns = [
            np.concatenate([p[i] for p in pieces]).astype(float) for i in range(1, len(pieces[0]))
        ]
        out[name] = _histogram(keys, *columns)
    return out


def _window(stats: dict, cut_hour: int) -> tuple[int, int, float]:
    """(users with history before and events after the cut, their events after it, the
    share of all events after it)."""
    e_hours, e_counts, e_positive = stats["events"]
    f_hours, f_users, f_positive = stats["first"]
    l_hours, l_users = stats["last"]
    users = f_users[f_hours <= cut_hour].sum() - l_users[l_hours <= cut_hour].sum()
    after = e_counts[e_hours > cut_hour].sum()
    events = e_positive[e_hours > cut_hour].sum() - f_positive[f_hours > cut_hour].sum()
    return int(users), int(events), float(after / max(e_counts.sum(), 1))


def choose_holdout(
    stats: dict, last: pd.Timestamp, config, min_users: int, min_events: int
) -> dict:
    """The split (module docstring): ``strategy`` "window" (with ``cutoff``) or "latest"
    (with ``active_since``), the estimated users and events, whether that is ``enough``,
    and a ``description`` of what was chosen and why."""
    last = pd.Timestamp(last)
    if config.holdout == "returning":
        gap = config.return_gap_days
        return {
            "strategy": "returning",
            "return_gap_days": gap,
            "active_since": (last - pd.Timedelta(days=config.max_validation_days)).isoformat(),
            "cutoff": None,
            "window_days": None,
            "enough": True,  # the gate checks the exact counts
            "min_users": min_users,
            "min_events": min_events,
            "description": (
                f"each user's events since their last return after at least {gap:g} day(s) "
                f"away (returns since {(last - pd.Timedelta(days=config.max_validation_days)).date()})"
            ),
        }
    tried = []
    days = config.validation_days
    while True:
        cutoff = last - pd.Timedelta(days=days)
        users, events, share = _window(stats, int(_hours(pd.Series([cutoff]))[0]))
        if tried and share > config.max_holdout_share:
            break
        tried.append({"days": days, "cutoff": cutoff, "users": users, "events": events})
        if days >= config.max_validation_days or (users >= min_users and events >= min_events):
            break
        days = min(days * 2, config.max_validation_days)
    need = f"at least {min_users} users with history and {min_events} events"
    ok = [t for t in tried if t["users"] >= min_users and t["events"] >= min_events]
    window = ok[0] if ok else max(tried, key=lambda t: t["users"])  # ties: the narrower
    widths = ", ".join(f"{t['days']}d: {t['users']} users/{t['events']} events" for t in tried)
    window_ok = window["users"] >= min_users and window["events"] >= min_events
    choice = {
        "strategy": "window",
        "window_days": window["days"],
        "cutoff": window["cutoff"].isoformat(),
        "estimated_users": window["users"],
        "estimated_events": window["events"],
        "enough": window_ok,
        "windows_tried": widths,
        "min_users": min_users,
        "min_events": min_events,
    }
    if config.holdout == "window" or (config.holdout == "auto" and window_ok):
        why = "enough" if window_ok else f"too little evidence: no window holds {need}"
        choice["description"] = (
            f"the last {window['days']} days (after {window['cutoff']}): about "
            f"{window['users']} users, {window['events']} events ({why}; tried {widths})"
        )
        return choice
    active_since = last - pd.Timedelta(days=config.max_validation_days)
    l_hours, l_eligible, l_held = stats["latest"]
    recent = l_hours > int(_hours(pd.Series([active_since]))[0])
    users, events = int(l_eligible[recent].sum()), int(l_held[recent].sum())
    latest_ok = users >= min_users and events >= min_events
    if config.holdout == "auto" and not latest_ok and window["users"] >= users:
        choice["description"] = (
            f"too little evidence: neither a window ({widths}) nor each active user's latest "
            f"events ({users} users) holds {need}; using the last {window['days']} days"
        )
        return choice
    why = "enough" if latest_ok else f"too little evidence: fewer than {need}"
    how = "no window holds " + need + f" ({widths}); " if config.holdout == "auto" else ""
    return {
        **choice,
        "strategy": "latest",
        "window_days": None,
        "cutoff": None,
        "active_since": active_since.isoformat(),
        "latest_share": config.latest_share,
        "latest_min_events": config.latest_min_events,
        "estimated_users": users,
        "estimated_events": events,
        "enough": latest_ok,
        "description": (
            f"{how}each active user's latest {config.latest_share:.0%} of events (users with "
            f">= {config.latest_min_events} events, active since {active_since.date()}): "
            f"about {users} users, {events} events ({why})"
        ),
    }


def holdout_mask(
    frame: pd.DataFrame, choice: dict | str, user_column: str = "user_idx"
) -> np.ndarray:
    """True for the rows of ``frame`` (all events of its users, in time order) that the
    hold-out takes; ``choice`` is :func:`choose_holdout`'s, or a cutoff timestamp."""
    if isinstance(choice, str) or choice.get("strategy") == "window":
        cutoff = choice if isinstance(choice, str) else choice["cutoff"]
        return (frame["timestamp"] > pd.Timestamp(cutoff)).to_numpy()
    users = frame.groupby(user_column, sort=False)
    if choice.get("strategy") == "returning":
        gap = users["timestamp"].diff() >= pd.Timedelta(days=choice["return_gap_days"])
        since = frame["timestamp"].where(gap).groupby(frame[user_column]).transform("max")
        recent = since > pd.Timestamp(choice["active_since"])
        return (recent & (frame["timestamp"] >= since)).to_numpy()
    from_end = users.cumcount(ascending=False).to_numpy()
    n = users[user_column].transform("size").to_numpy()
    last = users["timestamp"].transform("max")
    active = (last > pd.Timestamp(choice["active_since"])).to_numpy()
    held = np.maximum(1, np.floor(choice["latest_share"] * n))
    return active & (n >= choice["latest_min_events"]) & (from_end < held)


def evidence_counts(train: pd.DataFrame, valid: pd.DataFrame) -> tuple[int, int]:
    """(users with training history and hold-out items new to them, those user-item
    pairs): what the gate will have to decide on."""
    if valid.empty:
        return 0, 0
    n_items = np.int64(
        max(train["item_idx"].max() if len(train) else 0, valid["item_idx"].max()) + 1
    )
    seen = train["user_idx"].to_numpy(np.int64) * n_items + train["item_idx"].to_numpy()
    keys = np.unique(valid["user_idx"].to_numpy(np.int64) * n_items + valid["item_idx"].to_numpy())
    has_train = np.isin(keys // n_items, np.unique(train["user_idx"].to_numpy()))
    new = keys[~np.isin(keys, seen) & has_train]
    return int(np.unique(new // n_items).size), int(new.size)


# -- what tasks/features.py calls ------------------------------------------------------
def with_evidence(config: FeatureConfig, evaluate: EvaluateConfig) -> FeatureConfig:
    """``config`` with the gate's minimum of evidence where it sets none of its own."""
    return config.model_copy(
        update={
            "min_users": config.min_users or evaluate.min_users,
            "min_events": config.min_events or evaluate.min_events,
        }
    )


def holdout_stats(frame: pd.DataFrame, config: FeatureConfig) -> dict:
    positive = positive_mask(frame, config.positive, config.positive_min_value)
    return partition_stats(frame, config.latest_share, config.latest_min_events, positive)


def size_holdout(stats: list[dict], last: pd.Timestamp, config: FeatureConfig) -> dict:
    """The split (tasks/data/holdout.py); without a minimum of evidence in ``config``
    (``min_users``, ``min_events`` unset) the last ``validation_days`` as they are."""
    return choose_holdout(
        merge_stats(stats), last, config, config.min_users or 1, config.min_events or 1
    )


def split_events(frame: pd.DataFrame, choice: dict | str) -> dict[str, pd.DataFrame]:
    """``train`` (positive events before the hold-out), ``seen`` (the other events
    before it: never recommended back, never learned from as a liking) and ``valid``
    (positive hold-out events) of an encoded frame with a ``positive`` column."""
    is_valid = holdout_mask(frame, choice)
    positive = frame["positive"].to_numpy() if "positive" in frame else np.ones(len(frame), bool)
    rows = {
        "train": ~is_valid & positive,
        "seen": ~is_valid & ~positive,
        "valid": is_valid & positive,
    }
    return {
        name: frame.loc[r].drop(columns="positive", errors="ignore").reset_index(drop=True)
        for name, r in rows.items()
    }


def with_positives(interactions: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """``interactions`` and a ``positive`` column (tasks/data/positives.py)."""
    return interactions.assign(
        positive=positive_mask(interactions, config.positive, config.positive_min_value)
    )
