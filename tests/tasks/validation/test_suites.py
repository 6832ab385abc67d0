"""The pipeline's side of the suites: thresholds from the config, the suites' errors as its own."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from expectations.errors import ColumnTypeError, ThresholdError
from tasks.config import ValidateConfig
from tasks.errors import ConfigError, DataError
from tasks.validation.checks import validate_interactions
from tasks.validation.suites import pipeline_errors, suite_thresholds


def test_thresholds_are_the_validate_settings_of_the_same_names() -> None:
    config = ValidateConfig(
        value_min=-1.0,
        max_id_length=12,
        max_events_per_user=None,
        max_event_age_days=3.0,
        item_year_min=1901,
    )
    limits = suite_thresholds(config)
    assert dataclasses.asdict(limits) == {
        f.name: getattr(config, f.name) for f in dataclasses.fields(limits)
    }
    assert (limits.value_min, limits.max_id_length, limits.item_year_min) == (-1.0, 12, 1901)


@pytest.mark.parametrize(
    ("raised", "expected"), [(ThresholdError, ConfigError), (ColumnTypeError, DataError)]
)
def test_the_suites_errors_become_the_pipelines_with_the_same_message(raised, expected) -> None:
    with pytest.raises(expected) as caught, pipeline_errors():
        raise raised("what was expected; what was found; what to do")
    assert str(caught.value) == "what was expected; what was found; what to do"
    assert isinstance(caught.value.__cause__, raised)


def test_a_bad_min_timestamp_fails_validation_as_a_config_error(tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "user_id": pd.array(["u1"], dtype="str"),
            "item_id": pd.array(["i1"], dtype="str"),
            "timestamp": pd.to_datetime(["2024-05-01"], utc=True),
        }
    )
    with pytest.raises(ConfigError, match=r"validate.min_timestamp 'soon' is not a timestamp"):
        validate_interactions(
            frame,
            gx_root=tmp_path,
            config=ValidateConfig(min_timestamp="soon"),
            now=pd.Timestamp("2024-06-01", tz="UTC"),
        )
