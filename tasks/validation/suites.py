"""What the pipeline hands the suites in ``expectations/``, and what it makes of their errors.

The suites know nothing of the pipeline: they take plain :class:`Thresholds`, built here
from the ``validate`` config section, and raise their own exceptions, raised again here
as the pipeline's with the same message (so the CLI's failure line and exit code are those
of any configuration or data error).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields

from expectations.errors import ColumnTypeError, ThresholdError
from expectations.thresholds import Thresholds
from tasks.config import ValidateConfig
from tasks.errors import ConfigError, DataError


def suite_thresholds(config: ValidateConfig) -> Thresholds:
    """The suites' thresholds: the ``validate`` settings of the same names."""
    return Thresholds(**{f.name: getattr(config, f.name) for f in fields(Thresholds)})


@contextmanager
def pipeline_errors() -> Iterator[None]:
    """Raise a suite's ThresholdError as ConfigError and its ColumnTypeError as DataError,
    with the same message; also a decorator."""
    try:
        yield
    except ThresholdError as exc:
        raise ConfigError(str(exc)) from exc
    except ColumnTypeError as exc:
        raise DataError(str(exc)) from exc
