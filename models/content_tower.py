"""Two towers over item content: a content model and a hybrid.

* ``content_tower``: :class:`~models.two_tower.TwoTower` without an item-id embedding.
  An item's vector comes from its content alone (:mod:`models.content_encoders`: text,
  categories, numbers, places, vectors, images through a small CNN), so an item nobody
  has interacted with is placed exactly as a known one with the same content: it
  generalises to new items by construction, and cannot tell apart two items with the
  same content. It needs ``fit(..., content=ItemContent)``.
* ``hybrid_tower``: the two-tower with content and ``id_dropout`` 0.5 by default
  (DropoutNet, Volkovs et al., NeurIPS 2017): half the training items have their id
  part zeroed, so the item tower learns to place an item from its content alone as well
  as from its id. It is collaborative where an item has interactions (its trained id
  embedding is used at scoring) and content-based where it has none (scored through
  ``score_content`` with the id part zeroed). ``two_tower`` with content and
  ``id_dropout > 0`` is the same model; this name gives it its own defaults and a row
  of its own on the leaderboard.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from models.base import ModelSettings
from models.content import ItemContent
from models.content_encoders import ASSUMED_CONTENT, ContentShape, select_content
from models.keras_base import Dropout
from models.two_tower import TowerSettings, TwoTower, TwoTowerSettings


class ContentTowerSettings(TowerSettings):
    """The two-tower's settings without the id part's (see :class:`TowerSettings`)."""


class ContentTower(TwoTower):
    """User tower over the history bag, item tower over the item's content alone."""

    name: ClassVar[str] = "content_tower"
    fit_inputs: ClassVar[tuple[str, ...]] = ("validation", "content", "user_content")
    required_inputs: ClassVar[tuple[str, ...]] = ("content",)
    settings_class: ClassVar[type[ModelSettings]] = ContentTowerSettings
    uses_ids: ClassVar[bool] = False
    assumed_content: ClassVar[ContentShape | None] = ASSUMED_CONTENT

    def _fit(
        self,
        matrix: sp.csr_matrix,
        item_features: np.ndarray | None = None,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
        content: ItemContent | None = None,
        user_content: ItemContent | None = None,
    ) -> None:
        given = [] if content is None else content.names
        if (
            content is None
            or not select_content(content, self.params["skip_content"], self.name).kinds
        ):
            raise ValueError(
                f"{self.name}: no content left to place items by: the catalogue has {given}, "
                f"skip_content leaves out {self.params['skip_content']}; keep at least one"
            )
        super()._fit(matrix, validation=validation, content=content, user_content=user_content)


class HybridTowerSettings(TwoTowerSettings):
    """The two-tower's settings, ``id_dropout`` 0.5 by default."""

    id_dropout: Dropout = 0.5


class HybridTower(TwoTower):
    """The two-tower with content and id dropout: ids where known, content where not."""

    name: ClassVar[str] = "hybrid_tower"
    required_inputs: ClassVar[tuple[str, ...]] = ("content",)
    settings_class: ClassVar[type[ModelSettings]] = HybridTowerSettings
    assumed_content: ClassVar[ContentShape | None] = ASSUMED_CONTENT
