"""Which events count as positive feedback (``FeatureConfig.positive``).

A rating of 2 out of 5 is an interaction, not a liking: training on it as a positive
teaches the models what the user disliked, and a reason "because you watched X" naming
it reads wrong. The rule decides, per event, whether it counts as a positive in
training, in the hold-out and in reasons; every event still counts as *seen* (a
low-rated item is never recommended back to the user who rated it).

* ``auto`` (default): rated events (``event_type`` "rating") are positive when their
  value is at least ``positive_min_value``; every other event (views, purchases,
  implicit data without a value or an event type) is positive, as it always was;
* ``min_value``: every event with a value is positive when the value is at least
  ``positive_min_value`` (events without a value are positive);
* ``user_mean``: ... when the value is at least the mean of that user's values;
* ``all``: every event is positive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RATING = "rating"


def positive_mask(frame: pd.DataFrame, rule: str, min_value: float = 4.0) -> np.ndarray:
    """True for the rows of ``frame`` (``user_id`` or ``user_idx``, optional ``value`` and
    ``event_type``) that count as positive under ``rule`` (module docstring)."""
    n = len(frame)
    if rule == "all" or "value" not in frame:
        return np.ones(n, dtype=bool)
    value = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    has_value = np.isfinite(value)
    if rule == "auto":
        if "event_type" not in frame:
            return np.ones(n, dtype=bool)
        judged = has_value & (frame["event_type"].astype("str").to_numpy() == RATING)
        threshold = np.full(n, min_value)
    elif rule == "min_value":
        judged, threshold = has_value, np.full(n, min_value)
    elif rule == "user_mean":
        user = frame["user_idx"] if "user_idx" in frame else frame["user_id"]
        rated = pd.Series(np.where(has_value, value, np.nan), index=frame.index)
        threshold = rated.groupby(user.to_numpy()).transform("mean").to_numpy()
        judged = has_value
    else:
        raise ValueError(
            f"features.positive {rule!r} is not a rule; expected auto, min_value, user_mean or all"
        )
    return ~judged | (value >= threshold)
