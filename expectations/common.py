"""Pieces every suite shares: the meta levels and the checks of an id column.

Each expectation carries ``meta["level"]``, which tells validation what a failure means:

* ``row``: the flagged rows are quarantined, with ``meta["reason"]`` as the reason;
* ``batch``: the whole batch is rejected (DataValidationError); ``meta["check"]`` names
  the config field behind it;
* ``duplicates``: reported only; validation keeps the first good copy of a key and counts
  the others as duplicates dropped;
* ``flag``: the rows are kept and counted under ``meta["reason"]`` (e.g. item metadata
  missing), so the accounting says so.
"""

from __future__ import annotations

from typing import Any

from expectations.thresholds import Thresholds

BLANK_REGEX = r"^\s*$"
# Blank (caught by the blank check) or: no surrounding whitespace, no control characters.
WELL_FORMED_ID_REGEX = r"^\s*$|^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
ROW_COLUMN = "__row__"


def row(reason: str) -> dict:
    return {"level": "row", "reason": reason}


def batch(check: str) -> dict:
    return {"level": "batch", "check": check}


def flag(reason: str) -> dict:
    return {"level": "flag", "reason": reason}


def duplicates(key: list[str]) -> dict:
    return {"level": "duplicates", "key": key}


def id_expectations(column: str, limits: Thresholds) -> list[Any]:
    """Present, not blank, no surrounding whitespace or control characters, not too long."""
    import great_expectations.expectations as gxe

    blank = f"{column} is null or blank"
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=column, meta=row(blank)),
        gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=BLANK_REGEX, meta=row(blank)),
        gxe.ExpectColumnValuesToMatchRegex(
            column=column,
            regex=WELL_FORMED_ID_REGEX,
            meta=row(f"{column} has surrounding whitespace or control characters"),
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column=column,
            max_value=limits.max_id_length,
            meta=row(f"{column} longer than {limits.max_id_length} characters"),
        ),
    ]
