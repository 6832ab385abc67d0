"""The exceptions the suites raise on purpose.

Each message says what was expected, what was found and what to do; the pipeline raises
them again as its own errors with the same message (``tasks/validation/suites.py``):
``ThresholdError`` as a configuration error, ``ColumnTypeError`` as a data error.
"""

from __future__ import annotations


class ExpectationsError(Exception):
    """Base class of the errors the suites raise deliberately."""


class ThresholdError(ExpectationsError):
    """A threshold cannot be used as given (``min_timestamp`` that is not a timestamp)."""


class ColumnTypeError(ExpectationsError):
    """A column cannot be checked: its dtype is unusable, or GX could not evaluate an
    expectation on it."""
