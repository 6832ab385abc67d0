"""The Great Expectations suites for the item catalog and the user table.

Items: ``item_id`` present and well-formed (else quarantined), unique (later copies
dropped as duplicates); a missing title or release year (``metadata_missing``, e.g.
ML-100K item 267) and a year outside ``[validate.item_year_min, now + 5 years]`` are
flagged, not quarantined: the item and its interactions stay, and the accounting counts
them. An ``available`` flag that is not a boolean (true/false/1/0; null = available)
quarantines the item. Users: ``user_id`` present, well-formed and unique; an age outside
1..120 is flagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from expectations.common import batch, duplicates, flag, id_expectations, row
from expectations.thresholds import Thresholds

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

ITEMS_SUITE = "items"
USERS_SUITE = "users"
AGE_RANGE = (1, 120)
# What an ``available`` flag may hold (a null means available); anything else is quarantined.
AVAILABLE_VALUES = [True, False, 1, 0, "true", "false", "True", "False", "TRUE", "FALSE", "1", "0"]


def build_items_suite(
    limits: Thresholds, now: pd.Timestamp, columns: list[str]
) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=batch("items_min_rows")),
        *id_expectations("item_id", limits),
        gxe.ExpectColumnValuesToBeUnique(column="item_id", meta=duplicates(["item_id"])),
    ]
    if "metadata_missing" in columns:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="metadata_missing",
                value_set=[False],
                meta=flag("item metadata missing (no title or release year)"),
            )
        )
    if "available" in columns:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="available",
                value_set=AVAILABLE_VALUES,
                meta=row("available is not a boolean (expected true/false/1/0)"),
            )
        )
    if "year" in columns:
        newest = now.year + 5
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="year",
                min_value=limits.item_year_min,
                max_value=newest,
                meta=flag(f"item year outside [{limits.item_year_min}, {newest}]"),
            )
        )
    return gx.ExpectationSuite(name=ITEMS_SUITE, expectations=expectations)


def build_users_suite(limits: Thresholds, columns: list[str]) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, meta=batch("users_min_rows")),
        *id_expectations("user_id", limits),
        gxe.ExpectColumnValuesToBeUnique(column="user_id", meta=duplicates(["user_id"])),
    ]
    if "age" in columns:
        low, high = AGE_RANGE
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column="age",
                min_value=low,
                max_value=high,
                meta=flag(f"user age outside [{low}, {high}]"),
            )
        )
    return gx.ExpectationSuite(name=USERS_SUITE, expectations=expectations)
