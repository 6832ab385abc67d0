"""The Great Expectations suite for the item catalogue's content, as Python code.

Each content value of an item is checked by its kind:

* ``text``: at most ``max_text_chars`` characters;
* ``numeric``: a finite number;
* ``coordinates``: both numbers, latitude in -90..90 and longitude in -180..180;
* ``vector``: numbers, all finite, as many as most of the column's vectors have;
* ``image``: the file exists and decodes as an image.

A failing value quarantines that item's content of that name, with the reason: the
value is nulled (the item is without that content) and listed in the content
quarantine. The item itself, its other content and its interactions stay.

As for the edges (``expectations/edges.py``), the checks are computed beforehand
(``tasks/validation/content.py``: parsing, file reads) and GX validates what they found:
one column per check with the failing items' values as text (null elsewhere), each an
``expect_column_values_to_be_null``, so the Data Docs show each check's count and sample
values. ``great_expectations`` is imported inside the builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from expectations.common import row

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite

SUITE_NAME = "content"
VALUE_CHARS = 200  # a quarantined value is kept as text, cut to this length

TEXT_TOO_LONG = "text longer than {limit} characters"
NOT_FINITE = "not a finite number"
COORDINATES_NOT_NUMBERS = "coordinates not two numbers"
COORDINATES_OUT_OF_RANGE = "coordinates out of range (latitude -90..90, longitude -180..180)"
NOT_A_VECTOR = "not a vector of numbers"
VECTOR_NOT_FINITE = "vector holds values that are not finite"
VECTOR_LENGTH = "vector length differs from the most common length {length}"
IMAGE_MISSING = "image file missing"
IMAGE_UNREADABLE = "image file does not decode"


@dataclass(frozen=True)
class ContentLimits:
    max_text_chars: int  # content.max_text_chars


@dataclass(frozen=True)
class ContentCheck:
    """One check of one content column: which items fail it and why."""

    content: str  # the content's name (its column, or "lat_lon" for coordinates)
    kind: str
    what: str  # the check's reason, without the content's name
    mask: np.ndarray  # bool, one per item

    @property
    def column(self) -> str:
        """The check's column in the frame GX validates."""
        return f"{self.content}: {self.what}"

    @property
    def reason(self) -> str:
        return f"{self.content} ({self.kind}): {self.what}"


def suite_frame(values: dict[str, pd.Series], checks: list[ContentCheck]) -> pd.DataFrame:
    """The batch GX validates: one column per check, the failing items' value as text
    (``values``: each content's values as text, by content name), null elsewhere."""
    frame = {}
    for check in checks:
        text = values[check.content].astype(object).where(check.mask, None)
        frame[check.column] = text.map(lambda v: None if v is None else str(v)[:VALUE_CHARS])
    return pd.DataFrame(frame).reset_index(drop=True)


def build_content_suite(checks: list[ContentCheck]) -> ExpectationSuite:
    """Each check as a row-level expectation: its items' content is quarantined."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations = [
        gxe.ExpectColumnValuesToBeNull(column=check.column, meta=row(check.reason))
        for check in checks
    ]
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)
