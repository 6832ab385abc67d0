"""The limits the suites check against, as plain values.

The suites read nothing else of the pipeline's configuration: the pipeline builds one
``Thresholds`` from its ``validate`` section (``tasks/validation/suites.py``), and a caller
without that configuration builds one directly. Each field has the name of the
``validate.*`` setting it comes from, which the failure messages quote.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """What the interactions, items and users suites accept; ``None`` turns a check off."""

    value_min: float  # the least accepted ``value``
    value_max: float  # the largest accepted ``value``
    min_timestamp: str  # the oldest accepted event time, ISO 8601
    future_tolerance_hours: float  # how far past "now" an event time may lie
    min_rows: int  # the least rows a batch holds
    max_quarantine_share: float  # the largest share of a batch's rows quarantined
    max_id_length: int  # the longest accepted user or item id, in characters
    max_events_per_user: int | None  # more events of one user in a batch: a bot
    max_event_age_days: float | None  # the newest event at least this recent (stale data)
    max_volume_drop: float | None  # the largest drop below the trailing average row count
    item_year_min: int  # the oldest accepted item year
