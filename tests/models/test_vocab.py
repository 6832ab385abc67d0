"""Id vocabularies: the lookup of raw ids, by Arrow for strings and pandas otherwise."""

import numpy as np
import pandas as pd

from models.vocab import IdVocabulary

VOCAB = IdVocabulary(["b", "a", "c", "a", "é"])  # sorted, distinct: a, b, c, é


def test_ids_are_looked_up_whatever_container_holds_them() -> None:
    raw = ["c", "zz", None, "a", "é", "b"]
    expected = [2, -1, -1, 0, 3, 1]
    for given in (
        raw,
        tuple(raw),
        np.array(raw, dtype=object),
        pd.Series(raw, dtype=object),
        pd.Series(raw, dtype="string"),
        pd.Series(raw, dtype="string[pyarrow]"),
        pd.Index(raw),
    ):
        assert VOCAB.index(given).tolist() == expected, type(given)
        assert VOCAB.index(given).dtype == np.int64


def test_ids_that_are_not_strings_match_nothing_and_fall_back_to_pandas() -> None:
    assert VOCAB.index(pd.Series([1, 2])).tolist() == [-1, -1]
    assert VOCAB.index(pd.Series(["a", 5, np.nan], dtype=object)).tolist() == [0, -1, -1]
    assert VOCAB.index(np.array(["b", "c"])).tolist() == [1, 2]  # a numpy unicode array
    assert VOCAB.index([]).tolist() == []
