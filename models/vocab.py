"""Id vocabularies: raw string ids <-> dense indices, and the saved model bundle.

Models only ever see dense indices. A vocabulary is saved with each model so that
the model maps today's raw ids itself, whatever vocabulary today's features have.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import BaseRecommender


class IdVocabulary:
    """Sorted, unique raw ids; index i is the dense id of ``ids[i]``."""

    def __init__(self, ids: Iterable[str]) -> None:
        values = pd.Series(list(ids) if not isinstance(ids, (pd.Series, np.ndarray)) else ids)
        self.ids = np.array(sorted(values.astype(str).unique()), dtype=object)
        self._index = pd.Index(self.ids)

    @classmethod
    def from_sorted(cls, ids: Iterable[str]) -> IdVocabulary:
        """The vocabulary of ids that are already sorted and distinct (not sorted again)."""
        vocabulary = cls.__new__(cls)
        vocabulary.ids = np.asarray(ids, dtype=object)
        vocabulary._index = pd.Index(vocabulary.ids)
        return vocabulary

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdVocabulary) and np.array_equal(self.ids, other.ids)

    def index(self, raw: Iterable[str]) -> np.ndarray:
        """Dense indices of raw ids; -1 for ids not in the vocabulary (or null).

        Strings are looked up by Arrow's hash join (a million ids in a tenth of a
        second); anything else through pandas, which gives the same answer slower."""
        strings = _arrow_strings(raw)
        if strings is not None:
            import pyarrow.compute as pc

            found = pc.index_in(strings, value_set=self._arrow_ids())
            return np.asarray(found.fill_null(-1).to_numpy(), dtype=np.int64)
        return np.asarray(
            self._index.get_indexer(pd.Index(list(raw) if not isinstance(raw, pd.Series) else raw))
        )

    def _arrow_ids(self) -> Any:
        if getattr(self, "_arrow", None) is None:
            import pyarrow as pa

            self._arrow = pa.array(self.ids, type=pa.large_string())
        return self._arrow

    def raw(self, indices: np.ndarray) -> np.ndarray:
        """Raw ids of dense indices (indices must be valid)."""
        return self.ids[np.asarray(indices, dtype=np.int64)]

    def to_json(self) -> str:
        return json.dumps(self.ids.tolist())

    @classmethod
    def from_json(cls, text: str) -> IdVocabulary:
        return cls(json.loads(text))


def _arrow_strings(raw: Any) -> Any:
    """``raw`` as an Arrow large_string array when it holds only strings (and nulls),
    else None."""
    import pyarrow as pa

    if isinstance(raw, pd.Series | pd.Index):
        kind = raw.dtype
        if not (isinstance(kind, pd.StringDtype) or kind == np.dtype(object)):
            return None
        raw = raw.array if isinstance(kind, pd.StringDtype) else raw.to_numpy()
    elif isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "OU":
            return None
    elif not isinstance(raw, list | tuple):
        return None
    try:
        return pa.array(raw, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):  # not all strings
        return None


def save_bundle(
    directory: Path | str, model: BaseRecommender, users: IdVocabulary, items: IdVocabulary
) -> Path:
    """Save a fitted model with the vocabularies it was trained with."""
    directory = Path(directory)
    model.save(directory / "recommender")
    (directory / "users.json").write_text(users.to_json())
    (directory / "items.json").write_text(items.to_json())
    return directory


def load_bundle(directory: Path | str) -> tuple[BaseRecommender, IdVocabulary, IdVocabulary]:
    """``(model, users, items)`` from a folder written by :func:`save_bundle`."""
    from models import load_recommender

    directory = Path(directory)
    model = load_recommender(directory / "recommender")
    users = IdVocabulary.from_json((directory / "users.json").read_text())
    items = IdVocabulary.from_json((directory / "items.json").read_text())
    return model, users, items
