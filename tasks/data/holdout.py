"""The hold-out that decides promotion, sized by evidence (``FeatureConfig``).

A hold-out of 7 users can't tell two models apart. The split is chosen so that it holds
at least ``min_users`` users with history before it and ``min_events`` of their events:

1. **window**: the last ``validation_days`` of data, widened back in time (doubling, up to
   ``max_validation_days``) while the window keeps at most ``max_holdout_share`` of the
   events (the first window is always allowed: the training data needs the rest);
2. **latest**: when no window does (users active in short bursts, as in many rating
   datasets), each active user's latest events: the last ``latest_share`` (at least one)
   of the events of every user with ``latest_min_events`` or more events who was active
   lately: in the last ``validation_days``, widened (doubling, up to
   ``max_validation_days``) until those users hold enough evidence. The users measured
   are then the most recent ones, as the next days' users are.

3. **random** (``holdout = "random"``, and what a night without timestamps uses): the
   same share of each user's events as **latest** (users with ``latest_min_events`` or
   more events), picked at random instead of by time: each (user, item) pair gets a
   seeded hash of its indices, so the pick is the same in every partitioning.

The choice is made from small summaries of each user partition (hourly histograms of
events and of users' first and last events), so it scales with the partitions; the
counts it estimates ignore repeated items, and the snapshot records the exact ones.
When neither way reaches the minimum, the split with more users is used and marked
``enough: false``: the gate then keeps the champion (``kept: too little evidence``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tasks.config import EvaluateConfig, FeatureConfig

_EPOCH = pd.Timestamp(0, tz="UTC")


def _hours(timestamps: pd.Series) -> np.ndarray:
    """Whole hours since the epoch (UTC) of each timestamp."""
    since = pd.Series(pd.to_datetime(timestamps, utc=True)) - _EPOCH
    return (since // pd.Timedelta(hours=1)).to_numpy(np.int64)


HOUR_NS = 3_600 * 10**9


def _histogram(keys: np.ndarray, *weights: np.ndarray) -> list[np.ndarray]:
    """The distinct keys (ascending) and the sum of each of ``weights`` per key."""
    keys = np.asarray(keys, dtype=np.int64)
    low = keys.min() if len(keys) else 0
    if len(keys) and keys.max() - low <= 4 * len(keys) + 4096:  # hours: a dense range
        slot = keys - low
        present = np.flatnonzero(np.bincount(slot))
        sums = [np.bincount(slot, weights=w)[present].astype(np.int64) for w in weights]
        return [present.astype(np.int64) + low, *sums]
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = [np.bincount(inverse, weights=w, minlength=len(uniq)).astype(np.int64) for w in weights]
    return [uniq.astype(np.int64), *sums]


def stable_order(*keys: np.ndarray) -> np.ndarray:
    """Row order sorted by ``keys`` (the first most significant); ties keep the row
    order (Arrow's stable multi-key sort, several times faster than ``np.lexsort``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table({f"k{n}": np.asarray(key) for n, key in enumerate(keys)})
    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in table.column_names])
    return order.to_numpy()


def partition_stats(
    user: np.ndarray,
    hours: np.ndarray,
    latest_share: float,
    latest_min_events: int,
    positive: np.ndarray | None = None,
) -> dict:
    """The summaries of one user partition (all of each user's events) that
    :func:`choose_holdout` needs: ``user`` a code per row, equal for one user's rows;
    ``hours`` whole hours since the epoch (UTC); ``positive`` which events count as
    positives (tasks/data/positives.py): only those make a user evaluable and count as
    hold-out events; the share of the hold-out counts every event."""
    hours = np.asarray(hours, dtype=np.int64)
    pos = np.ones(len(hours), bool) if positive is None else np.asarray(positive, bool)
    if len(hours) == 0:
        empty = np.zeros(0, np.int64)
        return {
            "events": [empty] * 3,
            "first": [empty] * 3,
            "last": [empty] * 2,
            "latest": [empty] * 3,
        }
    order = stable_order(user, hours)  # by user, then hour; ties keep the row order
    user, hours, pos = np.asarray(user)[order], hours[order], pos[order]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], len(user)]
    size = ends - starts
    first, last_any = hours[starts], hours[ends - 1]
    n_pos = np.add.reduceat(pos.astype(float), starts)
    last_pos = np.maximum.reduceat(np.where(pos, hours, np.iinfo(np.int64).min), starts)
    last_pos = np.where(n_pos > 0, last_pos, first)
    # the latest strategy: the user's last max(1, share * n) events, of which the positives
    row_size = np.repeat(size, size)
    from_end = np.repeat(ends, size) - 1 - np.arange(len(user))
    held_rows = (row_size >= latest_min_events) & (
        from_end < np.maximum(1, np.floor(latest_share * row_size))
    )
    held = np.add.reduceat((held_rows & pos).astype(float), starts)
    eligible = ((size >= latest_min_events) & (held > 0)).astype(float)
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
    if config.holdout == "random":
        return _random_choice(stats, config, min_users, min_events)
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
                "away (returns since "
                f"{(last - pd.Timedelta(days=config.max_validation_days)).date()})"
            ),
        }
    tried: list[dict[str, Any]] = []
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
    # the users active lately: the narrowest activity window (doubling from
    # validation_days) whose users hold enough evidence, the most like the next days'
    l_hours, l_eligible, l_held = stats["latest"]
    active_days = config.validation_days
    while True:
        active_since = last - pd.Timedelta(days=active_days)
        recent = l_hours > int(_hours(pd.Series([active_since]))[0])
        users, events = int(l_eligible[recent].sum()), int(l_held[recent].sum())
        latest_ok = users >= min_users and events >= min_events
        if latest_ok or active_days >= config.max_validation_days:
            break
        active_days = min(active_days * 2, config.max_validation_days)
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
            f">= {config.latest_min_events} events, active in the last {active_days} days, "
            f"since {active_since.date()}): "
            f"about {users} users, {events} events ({why})"
        ),
    }


def _random_choice(stats: dict, config, min_users: int, min_events: int) -> dict:
    """The random per-user hold-out, with its estimated users and events."""
    _, l_eligible, l_held = stats["latest"]
    users, events = int(l_eligible.sum()), int(l_held.sum())
    enough = users >= min_users and events >= min_events
    why = "enough" if enough else f"too little evidence: fewer than {min_users} users "
    why += "" if enough else f"with history and {min_events} events"
    return {
        "strategy": "random",
        "cutoff": None,
        "window_days": None,
        "latest_share": config.latest_share,
        "latest_min_events": config.latest_min_events,
        "seed": RANDOM_SEED,
        "estimated_users": users,
        "estimated_events": events,
        "enough": enough,
        "min_users": min_users,
        "min_events": min_events,
        "description": (
            f"a random {config.latest_share:.0%} of each user's events (users with >= "
            f"{config.latest_min_events} events, seed {RANDOM_SEED}): about {users} users, "
            f"{events} events ({why})"
        ),
    }


RANDOM_SEED = 0x5EED


def pair_keys(user: np.ndarray, item: np.ndarray, seed: int = RANDOM_SEED) -> np.ndarray:
    """A pseudo-random 64-bit key per (user, item) pair (splitmix64 of the two indices):
    the same pair always gets the same key, whatever the partition it is in."""
    with np.errstate(over="ignore"):
        x = np.asarray(user, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.asarray(item, dtype=np.uint64) + np.uint64(seed)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def holdout_mask(
    user: np.ndarray,
    times: np.ndarray,
    unit_ns: int,
    choice: dict | str,
    item: np.ndarray | None = None,
) -> np.ndarray:
    """True for the rows (all events of their users, in time order) that the hold-out
    takes; ``choice`` is :func:`choose_holdout`'s, or a cutoff timestamp. ``user``: a
    code per row, equal for one user's rows; ``times``: the timestamps as integers of
    ``unit_ns`` nanoseconds each; ``item``: the item index per row (the random hold-out
    needs it)."""
    times = np.asarray(times, dtype=np.int64)
    if isinstance(choice, dict) and choice.get("strategy") == "random":
        if item is None:
            raise ValueError("the random hold-out needs the item of each row")
        return _random_mask(np.asarray(user), np.asarray(item), choice)
    if isinstance(choice, str) or choice.get("strategy") == "window":
        cutoff = choice if isinstance(choice, str) else choice["cutoff"]
        return times > _floor_units(cutoff, unit_ns)
    if len(times) == 0:
        return np.zeros(0, dtype=bool)
    order = stable_order(user)  # each user's rows, in the frame's order
    grouped = np.asarray(user)[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    ends = np.r_[starts[1:], len(grouped)]
    size = ends - starts
    at = times[order]
    active_since = _floor_units(choice["active_since"], unit_ns)
    if choice.get("strategy") == "returning":
        gap_ns = pd.Timedelta(days=choice["return_gap_days"]).value
        gap = np.r_[False, np.diff(at) >= -(-gap_ns // unit_ns)]  # ceil: diff >= the gap
        gap[starts] = False  # a user's first event follows no earlier one of theirs
        none = np.iinfo(np.int64).min
        since = np.repeat(np.maximum.reduceat(np.where(gap, at, none), starts), size)
        held = (since != none) & (since > active_since) & (at >= since)
    else:  # latest
        from_end = np.repeat(ends, size) - 1 - np.arange(len(at))
        n = np.repeat(size, size)
        last = np.repeat(np.maximum.reduceat(at, starts), size)
        keep = np.maximum(1, np.floor(choice["latest_share"] * n))
        held = (last > active_since) & (n >= choice["latest_min_events"]) & (from_end < keep)
    out = np.empty(len(at), dtype=bool)
    out[order] = held
    return out


def _random_mask(user: np.ndarray, item: np.ndarray, choice: dict) -> np.ndarray:
    """The random hold-out: per user with at least ``latest_min_events`` events, the
    ``latest_share`` of them (at least one) whose pair keys are the largest."""
    if len(user) == 0:
        return np.zeros(0, dtype=bool)
    keys = pair_keys(user, item, choice.get("seed", RANDOM_SEED))
    order = stable_order(user, keys)
    grouped = user[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    ends = np.r_[starts[1:], len(grouped)]
    size = ends - starts
    from_end = np.repeat(ends, size) - 1 - np.arange(len(grouped))
    n = np.repeat(size, size)
    keep = np.maximum(1, np.floor(choice["latest_share"] * n))
    held = (n >= choice["latest_min_events"]) & (from_end < keep)
    out = np.empty(len(user), dtype=bool)
    out[order] = held
    return out


def _floor_units(when: str, unit_ns: int) -> int:
    """The instant ``when`` as whole units, rounded down: ``t > when`` is ``t > this``."""
    return pd.Timestamp(when).value // unit_ns


def evidence_counts(
    train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray]
) -> tuple[int, int]:
    """(users with training history and hold-out items new to them, those user-item
    pairs): what the gate will have to decide on. ``train`` and ``valid``: (user indices,
    item indices) of the history before the hold-out and of the hold-out."""
    import pyarrow as pa
    import pyarrow.compute as pc

    (train_users, train_items), (valid_users, valid_items) = train, valid
    if len(valid_users) == 0:
        return 0, 0
    n_items = np.int64(max(np.max(train_items) if len(train_items) else 0, np.max(valid_items)) + 1)
    seen = pa.array(np.asarray(train_users, np.int64) * n_items + train_items)
    keys = pc.unique(pa.array(np.asarray(valid_users, np.int64) * n_items + valid_items))
    has_train = pc.is_in(pc.divide(keys, n_items), value_set=pc.unique(pa.array(train_users)))
    new = keys.filter(pc.and_(pc.invert(pc.is_in(keys, value_set=seen)), has_train))
    return len(pc.unique(pc.divide(new, n_items))), len(new)


# -- what tasks/features.py calls ------------------------------------------------------
def with_evidence(config: FeatureConfig, evaluate: EvaluateConfig) -> FeatureConfig:
    """``config`` with the gate's minimum of evidence where it sets none of its own."""
    return config.model_copy(
        update={
            "min_users": config.min_users or evaluate.min_users,
            "min_events": config.min_events or evaluate.min_events,
        }
    )


def size_holdout(stats: list[dict], last: pd.Timestamp, config: FeatureConfig) -> dict:
    """The split (tasks/data/holdout.py); without a minimum of evidence in ``config``
    (``min_users``, ``min_events`` unset) the last ``validation_days`` as they are."""
    return choose_holdout(
        merge_stats(stats), last, config, config.min_users or 1, config.min_events or 1
    )


def measured_description(holdout: dict) -> str:
    """The hold-out's description beside the users and events it actually held: the
    estimate it was sized on ("about N users, M events", from the partitions' summaries)
    named as the estimate, so it is not read as a second count."""
    import re

    return re.sub(
        r"about (\d+) users, (\d+) events",
        r"sized on an estimate of \1 users, \2 events",
        str(holdout.get("description", "")),
    )
