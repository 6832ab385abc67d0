"""The one protocol every recommender follows, and the shared machinery behind it.

In the spirit of scikit-learn and implicit:

* the constructor only stores config (keyword arguments, kept in ``params``);
* ``fit(interactions)`` learns from a users x items CSR matrix of dense indices,
  returns ``self`` and sets learned state in attributes whose names end in ``_``;
* ``recommend(users, k, exclude_seen=True, history=None)`` returns the top-k item
  indices and scores per user; ``history`` (a CSR matrix with the same shape as
  the training matrix) replaces the training interactions as the user's known
  history, both as model input and for exclusion;
* ``save(dir)`` / ``load(dir)`` round-trip exactly;
* anything called before ``fit`` raises :class:`NotFittedError`.

Rule for fitted state: a model lists the names of its fitted attributes in
``fitted_attributes``; every name ends in ``_`` and ``is_fitted`` is true when all
of them are set. The contract tests check that rule for every model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from models.ranking import top_k


class NotFittedError(RuntimeError):
    """A recommender was used before ``fit`` (or ``load``)."""


@runtime_checkable
class Recommender(Protocol):
    name: ClassVar[str]
    personalized: ClassVar[bool]

    def fit(self, interactions: sp.csr_matrix) -> Recommender: ...

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        history: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, directory: Path | str) -> Path: ...


class BaseRecommender:
    """Shared behaviour: parameters, fitted-state checks, top-k with exclusion, save/load."""

    name: ClassVar[str] = "base"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_",)

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    # -- fitted state -------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return all(getattr(self, attr, None) is not None for attr in self.fitted_attributes)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted; call fit(interactions) or "
                f"{type(self).__name__}.load(directory) first"
            )

    @property
    def n_users_(self) -> int:
        self._check_fitted()
        return self.train_matrix_.shape[0]

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return self.train_matrix_.shape[1]

    # -- fitting -----------------------------------------------------------------
    def fit(self, interactions: sp.spmatrix) -> BaseRecommender:
        matrix = sp.csr_matrix(interactions, dtype=np.float32)
        if matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0:
            raise ValueError(
                f"{self.name}: cannot fit on an empty interaction matrix (shape {matrix.shape}, "
                f"{matrix.nnz} interactions); check the training split"
            )
        matrix.sum_duplicates()
        self.train_matrix_ = matrix
        self._fit(matrix)
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    # -- scoring -----------------------------------------------------------------
    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Dense scores (len(users) x n_items); ``history`` holds those users' rows."""
        raise NotImplementedError

    def score(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """Raw scores for ``users`` over every item, without exclusion."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        rows = self._history_rows(users, history)
        return self._score(users, rows)

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        history: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first.

        Where fewer than k items can be recommended the row is padded with -1 and -inf.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        rows = self._history_rows(users, history)
        scores = self._score(users, rows)
        return top_k(scores, k, exclude=rows if exclude_seen else None)

    def _history_rows(self, users: np.ndarray, history: sp.csr_matrix | None) -> sp.csr_matrix:
        source = self.train_matrix_ if history is None else sp.csr_matrix(history)
        if source.shape[1] != self.n_items_:
            raise ValueError(
                f"{self.name}: history has {source.shape[1]} items, the model was fitted on "
                f"{self.n_items_}; build history with the same item vocabulary"
            )
        if users.size and (users.min() < 0 or users.max() >= source.shape[0]):
            raise IndexError(
                f"{self.name}: user indices must be in 0..{source.shape[0] - 1}, "
                f"got {users.min()}..{users.max()}"
            )
        return source[users]

    # -- persistence -------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "params": self.params}
        (directory / "recommender.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        sp.save_npz(directory / "train_matrix.npz", self.train_matrix_)
        self._save_state(directory)
        return directory

    def _save_state(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path | str) -> BaseRecommender:
        directory = Path(directory)
        meta = json.loads((directory / "recommender.json").read_text())
        if meta["model"] != cls.name:
            raise ValueError(
                f"{directory} holds a {meta['model']!r} model, not {cls.name!r}; "
                "use models.load_recommender(directory) to load any model"
            )
        model = cls(**meta["params"])
        model.train_matrix_ = sp.load_npz(directory / "train_matrix.npz").tocsr()
        model._load_state(directory)
        return model

    def _load_state(self, directory: Path) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({args})"
