"""Which events count as positives, by rule, with hand-worked answers."""

import numpy as np
import pandas as pd
import pytest

from tasks.data.positives import positive_mask

RATED = pd.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c"],
        "value": [5.0, 2.0, 4.0, 3.0, 1.0, np.nan],
        "event_type": ["rating", "rating", "rating", "rating", "view", "purchase"],
    }
)


def test_auto_judges_ratings_only() -> None:
    # a: 5 yes, 2 no, 4 yes; b: rated 3 no, a view with value 1 stays positive; c: no value
    assert positive_mask(RATED, "auto").tolist() == [True, False, True, False, True, True]


def test_min_value_judges_every_valued_event() -> None:
    assert positive_mask(RATED, "min_value", 3.0).tolist() == [True, False, True, True, False, True]


def test_user_mean() -> None:
    # a's mean 11/3: 5 and 4 are above it; b's mean 2: 3 is, 1 is not
    assert positive_mask(RATED, "user_mean").tolist() == [True, False, True, True, False, True]


def test_implicit_data_is_positive_whatever_the_rule() -> None:
    implicit = RATED[["user_id"]]
    for rule in ("auto", "min_value", "user_mean", "all"):
        assert positive_mask(implicit, rule).all()
    assert positive_mask(RATED.drop(columns="event_type"), "auto").all()


def test_an_unknown_rule_says_what_is_expected() -> None:
    with pytest.raises(ValueError, match="expected auto, min_value, user_mean or all"):
        positive_mask(RATED, "liked")
