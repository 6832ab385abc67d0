"""Typed item content as models read it: the ``content`` fit input.

:class:`ItemContent` holds one row per item for every content of the catalogue, already
encoded (tasks/data/content_features.py does it from a feature snapshot):

    kind        array (rows = items)                       meaning
    text        int32 items x tokens, 0 padding, 1 unknown  word ids
    category    int32 items, 0 none, 1 unknown              one id
    categories  int32 items x values, 0 padding             several ids
    numeric     float32 items                               z-score (0 where missing)
    coordinates float32 items x 3                           unit vector on the sphere
    vector      float32 items x d                           L2-normalised (0 where missing)
    image       uint8 items x size x size x 3               RGB pixels

plus ``masks[name]`` (bool, items): the item has that content. ``sizes[name]`` is the
number of ids of an id kind (text, category, categories; ids < size).

Row order: in the ``content`` given to ``fit``, rows ``0 .. n_items - 1`` are the
interaction matrix's items in index order; further rows may follow (items nobody has
interacted with yet). A model that reads content scores such items from their content
alone with :meth:`ContentScoring.score_content` and the rows of those items.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

Kind = Literal["text", "category", "categories", "numeric", "coordinates", "vector", "image"]
KINDS: tuple[str, ...] = get_args(Kind)
ID_KINDS = frozenset({"text", "category", "categories"})


@dataclass(frozen=True)
class ItemContent:
    """Encoded content, one row per item (see the module docstring)."""

    kinds: dict[str, str]
    values: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = {len(v) for v in self.values.values()} | {len(m) for m in self.masks.values()}
        if len(lengths) > 1:
            raise ValueError(f"item content: every content needs one row per item; got {lengths}")
        for name, kind in self.kinds.items():
            if kind not in KINDS:
                raise ValueError(f"item content {name!r}: unknown kind {kind!r}; one of {KINDS}")
            if name not in self.values or name not in self.masks:
                raise ValueError(f"item content {name!r}: values and mask are both needed")
            if kind in ID_KINDS and name not in self.sizes:
                raise ValueError(f"item content {name!r} ({kind}): its number of ids is needed")

    def __len__(self) -> int:
        return len(next(iter(self.masks.values()))) if self.masks else 0

    @property
    def names(self) -> list[str]:
        return list(self.kinds)

    def rows(self, index: np.ndarray | slice) -> ItemContent:
        """The content of the items at ``index`` (images stay memory-mapped until read)."""
        return ItemContent(
            dict(self.kinds),
            {n: v[index] for n, v in self.values.items()},
            {n: m[index] for n, m in self.masks.items()},
            dict(self.sizes),
        )

    def without(self, kinds: Collection[str]) -> ItemContent:
        """This content without the contents of the given kinds (e.g. ``{"image"}``)."""
        keep = [n for n, k in self.kinds.items() if k not in kinds]
        return self.only(keep)

    def only(self, names: Iterable[str]) -> ItemContent:
        """This content restricted to the contents ``names`` (in that order)."""
        names = list(names)
        missing = sorted(set(names) - set(self.kinds))
        if missing:
            raise ValueError(f"item content has no {missing}; it has {self.names}")
        return ItemContent(
            {n: self.kinds[n] for n in names},
            {n: self.values[n] for n in names},
            {n: self.masks[n] for n in names},
            {n: self.sizes[n] for n in names if n in self.sizes},
        )


def check_content(content: ItemContent, n_items: int, who: str) -> ItemContent:
    """``content`` when it has at least one row per item of the matrix, else a ValueError."""
    if not isinstance(content, ItemContent):
        raise TypeError(
            f"{who}: content must be a models.content.ItemContent, got {type(content).__name__}"
        )
    if content.kinds and len(content) < n_items:
        raise ValueError(
            f"{who}: content has {len(content)} rows, expected at least {n_items}: rows "
            "0..n_items-1 are the interaction matrix's items, in index order"
        )
    return content


class ContentScoring:
    """A model that scores items from their content alone (items nobody has interacted
    with). ``score_content(users, history, content)`` gives users x len(content) scores for
    the items ``content`` describes (rows in :class:`ItemContent`'s layout, any number);
    ``history`` is a CSR matrix over the fitted matrix's items, rows indexed by user, as
    in ``score``. A higher score is a better match. ``content_vectors(content)`` gives
    the items' vectors from their content alone (items x d), for explanations: which
    items a user chose look most like a new item. ``score_vectors(users, history,
    vectors)`` scores items by vectors ``content_vectors`` gave: a caller that scores the
    same items for many blocks of users encodes their content once."""

    def score_content(
        self, users: np.ndarray, history: sp.csr_matrix | None, content: ItemContent
    ) -> np.ndarray:
        return self.score_vectors(users, history, self.content_vectors(content))

    def score_vectors(
        self, users: np.ndarray, history: sp.csr_matrix | None, vectors: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def content_vectors(self, content: ItemContent) -> np.ndarray:
        raise NotImplementedError

    def reads_content(self) -> bool:
        """This fitted model was given content to read (it can score new items)."""
        return True
