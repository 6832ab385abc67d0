"""The one protocol every recommender follows, and the shared machinery behind it.

In the spirit of scikit-learn and implicit:

* the constructor only stores config: keyword arguments, checked against the model's
  settings class (``settings_class``, a :class:`ModelSettings`: the one place its
  defaults and bounds are declared) and kept in ``params`` as a plain dict;
* ``fit(interactions, sequences=None, *, item_features=None, validation=None,
  social=None, ages=None, content=None, user_content=None)`` learns from a users x items
  CSR matrix of dense indices, returns ``self`` and sets learned state in attributes
  whose names end in ``_``. The
  optional inputs (see :mod:`models.inputs`) are time-ordered item sequences per
  user, dense item content features, a validation target for early stopping and
  the users x users relations (friends, follows); ``ages`` gives each training
  interaction's age in days (:mod:`models.ages`); ``content`` is the items' typed
  content (text, categories, numbers, places, vectors, images: :mod:`models.content`);
  ``user_content`` the users' attributes in that form, row u user u
  (:mod:`models.user_content`). A model lists the ones it uses in ``fit_inputs`` and
  ignores the others, so a caller can hand every model the same inputs; a model that
  needs one lists it in ``required_inputs`` and ``fit`` raises ``ValueError`` without it;
* ``inputs`` says what the model reads beyond interactions, for people and tools
  (the leaderboard, ``model list``): ``"sequences"`` (the order of events),
  ``"content"`` (item features), ``"social"`` (relations between users); empty for
  a model of the interaction matrix alone;
* ``recommend(users, k, exclude_seen=True, history=None, sequences=None)``
  returns the top-k item indices and scores per user; ``history`` (a CSR matrix
  with the same items as the training matrix, rows indexed by user) replaces the
  training interactions as the user's known history, both as model input and for
  exclusion. ``sequences`` (indexed by user like ``history``) gives that history
  in time order; when it is given without ``history``, the history is the set of
  items in the sequences. Order-free models only see the set;
* ``save(dir)`` / ``load(dir)`` round-trip exactly;
* anything called before ``fit`` raises :class:`NotFittedError`.

Rule for fitted state: a model lists the names of its fitted attributes in
``fitted_attributes``; every name ends in ``_`` and ``is_fitted`` is true when all
of them are set. The contract tests check that rule for every model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError

from models.ages import check_ages
from models.ann import CANDIDATE_MARGIN
from models.content import ItemContent, check_content
from models.inputs import (
    ItemSequences,
    check_item_features,
    check_sequences,
    check_social,
    check_validation,
    sequences_to_csr,
)
from models.memory import DataShape, MemoryEstimate
from models.ranking import columns_top_k, sparse_top_k, top_k, top_k_candidates
from models.user_content import check_user_content


class NotFittedError(RuntimeError):
    """A recommender was used before ``fit`` (or ``load``)."""


@runtime_checkable
class Recommender(Protocol):
    name: ClassVar[str]
    personalized: ClassVar[bool]

    def fit(
        self,
        interactions: sp.csr_matrix,
        sequences: ItemSequences | None = None,
        *,
        item_features: np.ndarray | None = None,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
        social: sp.csr_matrix | None = None,
        ages: sp.csr_matrix | None = None,
    ) -> Recommender: ...

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        history: sp.csr_matrix | None = None,
        sequences: ItemSequences | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, directory: Path | str) -> Path: ...


class ModelSettings(BaseModel):
    """A model's settings: their names, defaults and bounds, declared once.

    Each model module defines a subclass beside its model class, which names it in
    ``settings_class``; the pipeline config composes the same classes, so a setting
    given in the TOML file or the environment is checked where the model declares it.
    """

    model_config = ConfigDict(extra="forbid")


_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def _problem(error: Any) -> str:
    """One validation error as ``name must be >= 1, got 0`` (bounds) or ``name: message``."""
    where = ".".join(str(key) for key in error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] in _BOUNDS:
        limit = next(iter(ctx.values()), "?")
        return f"{where} must be {_BOUNDS[error['type']]} {limit}, got {error['input']!r}"
    message = str(ctx["error"]) if error["type"] == "value_error" else error["msg"]
    if not where:  # a check across settings: its message names them
        return message
    return f"{where}: {message}, got {error['input']!r}"


class BaseRecommender:
    """Shared behaviour: parameters, fitted-state checks, top-k with exclusion, save/load."""

    name: ClassVar[str] = "base"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_",)
    #: optional fit inputs this model uses (passed to ``_fit`` as keyword arguments)
    fit_inputs: ClassVar[tuple[str, ...]] = ()
    #: fit inputs this model cannot do without
    required_inputs: ClassVar[tuple[str, ...]] = ()
    #: a model whose validation target chooses settings (not epochs) and that is cheap to
    #: fit again: once they are chosen, the night fits it again on the whole training
    #: period (:meth:`refit_params`), the days carved out for validation included
    refit_on_all: ClassVar[bool] = False
    #: what the model reads beyond interactions: "sequences", "content", "social"
    inputs: ClassVar[frozenset[str]] = frozenset()
    #: ``score`` may run in several threads at once (numpy / scipy work that releases the
    #: GIL); models whose scoring has threads of its own (Keras, BLAS-heavy factor models)
    #: say no, and their calls are then made one at a time
    concurrent_scoring: ClassVar[bool] = True
    #: the model's settings: the keyword arguments it takes, their defaults and bounds
    settings_class: ClassVar[type[ModelSettings]] = ModelSettings

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = self.settings(**params).model_dump()

    # -- cost ----------------------------------------------------------------------
    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Peak memory of this model's own arrays for data of ``shape`` with settings
        ``params`` (defaults filled in), estimated without allocating anything."""
        raise NotImplementedError(f"{cls.name}: no memory estimate")

    @classmethod
    def scalable_params(cls, shape: DataShape, **params: Any) -> dict[str, Any] | None:
        """Settings of this model's scalable form for data of ``shape`` (memory that grows
        with what it keeps, not with items^2), or None when it has no other form or
        ``params`` already choose it."""
        return None

    @classmethod
    def settings(cls, **params: Any) -> ModelSettings:
        """``params`` checked against ``settings_class``, the defaults filled in.

        An unknown name raises ``TypeError`` listing the accepted ones; a value out of
        its bounds or of the wrong type raises ``ValueError``; both name the model."""
        accepted = list(cls.settings_class.model_fields)
        unknown = [key for key in params if key not in accepted]
        if unknown:
            raise TypeError(
                f"{cls.name}: unknown setting {', '.join(map(repr, unknown))}; expected "
                + (f"one of {', '.join(accepted)}" if accepted else "none (it takes no settings)")
            )
        try:
            return cls.settings_class(**params)
        except ValidationError as exc:
            problems = "; ".join(_problem(error) for error in exc.errors())
            raise ValueError(f"{cls.name}: {problems}") from None

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
        return int(self.train_matrix_.shape[0])

    @property
    def n_items_(self) -> int:
        self._check_fitted()
        return int(self.train_matrix_.shape[1])

    # -- fitting -----------------------------------------------------------------
    def fit(
        self,
        interactions: sp.spmatrix,
        sequences: ItemSequences | None = None,
        *,
        item_features: np.ndarray | None = None,
        validation: tuple[np.ndarray, sp.spmatrix] | None = None,
        social: sp.spmatrix | None = None,
        ages: sp.spmatrix | None = None,
        content: ItemContent | None = None,
        user_content: ItemContent | None = None,
        callbacks: Sequence[Any] = (),
    ) -> Self:
        """Learn from ``interactions``; optional inputs are described in :mod:`models.inputs`.

        ``callbacks``: objects told of this fit's progress (Keras callbacks for Keras
        models; ``on_train_begin()`` / ``on_epoch_end(i)`` for iterative ones), available
        to ``_fit`` as ``self._fit_callbacks`` during this fit only, never kept with the
        model; models that train in one step ignore them."""
        matrix = sp.csr_matrix(interactions, dtype=np.float32)
        if matrix.shape[0] == 0 or matrix.shape[1] == 0 or matrix.nnz == 0:
            raise ValueError(
                f"{self.name}: cannot fit on an empty interaction matrix (shape {matrix.shape}, "
                f"{matrix.nnz} interactions); check the training split"
            )
        matrix.sum_duplicates()
        n_users, n_items = matrix.shape
        given = {
            "sequences": sequences,
            "item_features": item_features,
            "validation": validation,
            "social": social,
            "ages": None if ages is None else check_ages(ages, matrix, self.name),
            "content": None if content is None else check_content(content, n_items, self.name),
            "user_content": check_user_content(user_content, n_users, self.name),
        }
        for needed in self.required_inputs:
            if given[needed] is None:
                raise ValueError(
                    f"{self.name}: fit() needs {needed}=...; this model learns from the order "
                    "of each user's interactions. Pass sequences=[items of user 0 oldest "
                    "first, ...] (models.inputs.sequences_from_events builds them)"
                    if needed == "sequences"
                    else f"{self.name}: fit() needs social=...; this model learns from the "
                    "relations between users. Pass social=a users x users CSR matrix of "
                    "the relations (row u: the users u follows or is friends with), over "
                    "the interaction matrix's user indices"
                    if needed == "social"
                    else f"{self.name}: fit() needs content=...; this model places items by "
                    "their content. Pass content=a models.content.ItemContent, rows "
                    "0..n_items-1 the interaction matrix's items (tasks.data.content_features"
                    ".item_content reads a feature snapshot's)"
                    if needed == "content"
                    else f"{self.name}: fit() needs {needed}=...; got None"
                )
        if sequences is not None:
            given["sequences"] = check_sequences(sequences, n_users, n_items, self.name)
        if item_features is not None:
            given["item_features"] = check_item_features(item_features, n_items, self.name)
        if validation is not None:
            given["validation"] = check_validation(validation, n_users, n_items, self.name)
        if social is not None:
            given["social"] = check_social(social, n_users, self.name)
        self.train_matrix_ = matrix
        self._fit_callbacks = list(callbacks)
        try:
            self._fit(matrix, **{key: given[key] for key in self.fit_inputs})
        finally:
            del self._fit_callbacks
        return self

    # Each model defines ``_fit(matrix, <the names in its fit_inputs>=...)``: ``fit`` passes
    # exactly those inputs as keywords, so a model's signature names what it reads.
    _fit: Callable[..., None]

    # -- scoring -----------------------------------------------------------------
    def shared_scores(self) -> np.ndarray | None:
        """A model that is not personal (:attr:`personalized` False) ranks every user by
        the same scores: those, one per item (None for a personal model)."""
        return None

    def shared_reason(self) -> str | None:
        """Why a non-personal model ranks an item where it does, as a row's ``reason``."""
        return None

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """Dense scores (len(users) x n_items); ``history`` holds those users' rows."""
        raise NotImplementedError

    def _score_request(
        self, users: np.ndarray, history: sp.csr_matrix, sequences: ItemSequences | None
    ) -> np.ndarray:
        """Scores for one request; order-aware models override this to use ``sequences``."""
        return self._score(users, history)

    def score(
        self,
        users: np.ndarray,
        history: sp.csr_matrix | None = None,
        sequences: ItemSequences | None = None,
    ) -> np.ndarray:
        """Raw scores for ``users`` over every item, without exclusion."""
        return self._scores_and_rows(users, history, sequences)[0]

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        history: sp.csr_matrix | None = None,
        sequences: ItemSequences | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores per user, best first.

        Where fewer than k items can be recommended the row is padded with -1 and -inf.
        A model with an item index (:attr:`retrieves`) ranks its retrieved candidates:
        k plus the user's history plus a margin, so exclusion never leaves fewer than k.
        """
        users, rows, sequences = self._request_rows(users, history, sequences)
        if self.retrieves:
            excluded = np.diff(rows.indptr) if exclude_seen else np.zeros(len(users), np.int64)
            items, scores = self._retrieve(users, rows, k + excluded + CANDIDATE_MARGIN)
            return top_k_candidates(items, scores, k, exclude=rows if exclude_seen else None)
        exclude = rows if exclude_seen else None
        sparse = self._score_sparse(users, rows) if sequences is None else None
        if sparse is not None:
            return sparse_top_k(sparse, k, exclude=exclude)
        columns = self._score_columns(users, rows, sequences)
        if columns is not None:
            return columns_top_k(*columns, k, exclude=exclude)
        return top_k(self._score_request(users, rows, sequences), k, exclude=exclude)

    def _score_columns(
        self, users: np.ndarray, history: sp.csr_matrix, sequences: ItemSequences | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``(scores, items)`` for a model that ranks only some items (every other item
        scores -inf): dense scores over ``items`` (ascending item indices); None (the
        default) for a model that scores every item."""
        return None

    def score_columns(
        self,
        users: np.ndarray,
        history: sp.csr_matrix | None = None,
        sequences: ItemSequences | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`score` over the only items the model ranks, ``(scores, items)``, where
        it ranks a subset (a network restricted to its head items, :mod:`models.width`),
        else None. Ranked with :func:`models.ranking.columns_top_k`, it gives exactly
        :meth:`recommend`'s lists in time of those items, not of the catalog."""
        users, rows, sequences = self._request_rows(users, history, sequences)
        return self._score_columns(users, rows, sequences)

    def _score_sparse(self, users: np.ndarray, history: sp.csr_matrix) -> sp.csr_matrix | None:
        """Scores as a sparse matrix (absent cells score 0), for a model whose scores are
        a sparse product; None (the default) for a model that scores dense."""
        return None

    def score_sparse(
        self, users: np.ndarray, history: sp.csr_matrix | None = None
    ) -> sp.csr_matrix | None:
        """:meth:`score` as a sparse matrix (absent cells score 0) where the model's scores
        are a sparse product (sparse EASE, item-kNN), else None. Ranked with
        :func:`models.ranking.sparse_top_k`, it gives exactly :meth:`recommend`'s lists
        in time of the entries, not of users x items."""
        users, rows, _ = self._request_rows(users, history, None)
        return self._score_sparse(users, rows)

    @property
    def dense_scores(self) -> bool:
        """Whether ranking this model's users fills a block of users x catalog scores:
        false for a model ranked over sparse scores, a subset of items or retrieved
        candidates, whose blocks of users may be as large as the caller likes."""
        return True

    @property
    def retrieves(self) -> bool:
        """Whether this model ranks candidates retrieved from an item index (a factor model
        over a catalog of at least its ``ann_min_items``) rather than every item's score."""
        return getattr(self, "item_index_", None) is not None

    def candidates(
        self, users: np.ndarray, n: int | np.ndarray, history: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``n`` items per user (``n``: one width, or one per user) with their
        scores, best first and without exclusion: ``(items, scores)``, padded with -1 and
        -inf to the widest row (at least ``max(n)``). Retrieved from the item index when
        the model has one (approximate, scores exact), else from the dense scores."""
        users, rows, _ = self._request_rows(users, history, None)
        widths = np.broadcast_to(np.asarray(n, dtype=np.int64), users.shape)
        if self.retrieves:
            return self._retrieve(users, rows, widths)
        width = int(widths.max()) if widths.size else 1
        return top_k(self._score(users, rows), width, overwrite=True)

    def _retrieve(
        self, users: np.ndarray, history: sp.csr_matrix, widths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from the model's item index (models with one define it)."""
        raise NotImplementedError

    def _scores_and_rows(
        self,
        users: np.ndarray,
        history: sp.csr_matrix | None,
        sequences: ItemSequences | None,
    ) -> tuple[np.ndarray, sp.csr_matrix]:
        users, rows, sequences = self._request_rows(users, history, sequences)
        return self._score_request(users, rows, sequences), rows

    def _request_rows(
        self,
        users: np.ndarray,
        history: sp.csr_matrix | None,
        sequences: ItemSequences | None,
    ) -> tuple[np.ndarray, sp.csr_matrix, ItemSequences | None]:
        """The users as indices, their history rows and the checked sequences, as for
        scoring."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if sequences is not None:
            sequences = check_sequences(sequences, len(sequences), self.n_items_, self.name)
        return users, self._history_rows(users, history, sequences), sequences

    def _history_rows(
        self,
        users: np.ndarray,
        history: sp.csr_matrix | None,
        sequences: ItemSequences | None = None,
    ) -> sp.csr_matrix:
        n_items = self.train_matrix_.shape[1]
        if history is not None:
            source = sp.csr_matrix(history)
        elif sequences is not None:
            source = sequences_to_csr(sequences, n_items)
        else:
            source = self.train_matrix_
        if source.shape[1] != n_items:
            raise ValueError(
                f"{self.name}: history has {source.shape[1]} items, the model was fitted on "
                f"{n_items}; build history with the same item vocabulary"
            )
        if users.size and (users.min() < 0 or users.max() >= source.shape[0]):
            raise IndexError(
                f"{self.name}: user indices must be in 0..{source.shape[0] - 1}, "
                f"got {users.min()}..{users.max()}"
            )
        if sequences is not None and users.size and users.max() >= len(sequences):
            raise IndexError(
                f"{self.name}: sequences has {len(sequences)} entries, user index "
                f"{users.max()} asked; index sequences by user like history"
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
    def load(cls, directory: Path | str) -> Self:
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
