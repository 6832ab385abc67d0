"""The item catalogue's content, encoded in memory for an evaluation (no snapshot).

The nightly writes content features into a feature snapshot and reads them back as an
:class:`models.content.ItemContent` (tasks/data/content_features.py). ``recpipe
evaluate`` has no snapshot: :class:`CatalogueContent` encodes the source's items table
the same way (:func:`tasks.data.content_features.aligned_items` and
:func:`~tasks.data.content_features.content_frames`, images kept in memory) for the
items of a split, in the order the split gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.content import ID_KINDS, ItemContent
from tasks.config import ContentConfig
from tasks.data.content import ContentSchema


@dataclass(frozen=True)
class CatalogueContent:
    """A source's items table (``item_id`` plus content columns, image paths absolute),
    its content schema and the ``[content]`` limits."""

    items: pd.DataFrame
    schema: ContentSchema
    config: ContentConfig

    def __bool__(self) -> bool:
        return bool(self.schema)

    def content(self, item_ids: Sequence[str] | np.ndarray) -> ItemContent:
        """The encoded content of ``item_ids``, row i for ``item_ids[i]`` (an id missing
        from the catalogue gets an empty row: every mask false). Token and category
        vocabularies are built over the whole catalogue, as the nightly's features are."""
        from tasks.data.content_features import aligned_items, content_frames

        ids = pd.array([str(i) for i in item_ids], dtype="str")
        if len(set(ids)) != len(ids):
            raise ValueError("item content: item_ids must be distinct")
        vocabulary = pd.DataFrame({"item_id": ids, "item_idx": np.arange(len(ids))})
        rows = aligned_items(self.items, vocabulary)
        columns, stats = content_frames(rows, self.schema, self.config, None)
        return content_from_frames(columns, stats).rows(slice(0, len(ids)))


def content_from_frames(columns: dict[str, np.ndarray], stats: dict[str, dict]) -> ItemContent:
    """:func:`~tasks.data.content_features.content_frames`' columns and statistics as an
    :class:`ItemContent` (ids int32, numbers float32, images uint8), in the snapshot
    reader's form (:func:`tasks.data.content_features.item_content`)."""
    kinds = {name: info["kind"] for name, info in stats.items()}
    sizes = {
        name: len(info.get("vocabulary", [])) + 2
        for name, info in stats.items()
        if info["kind"] in ID_KINDS
    }
    values = {}
    for name, kind in kinds.items():
        array = np.asarray(columns[name])
        if kind in ID_KINDS:
            array = array.astype(np.int32)
        elif kind != "image":
            array = array.astype(np.float32)
        values[name] = array
    masks = {name: np.asarray(columns[f"has_{name}"], dtype=bool) for name in kinds}
    return ItemContent(kinds, values, masks, sizes)


def catalogue_from_source(
    items: pd.DataFrame | None,
    schema: ContentSchema | None,
    config: ContentConfig,
    source: str,
) -> CatalogueContent:
    """The source's catalogue with its content: ``schema`` as ingest read it (a catalogue
    file, its images resolved against the file's folder), else detected from ``items``
    (MovieLens: title, genres, year). A ``DataError`` when there is no content."""
    from tasks.data.content import content_schema
    from tasks.errors import DataError

    if items is None or items.empty:
        raise DataError(
            f"source {source!r} has no item catalogue, and this evaluation ranks items by "
            "their content; expected an items table with content columns (text, "
            "categories, numbers, images, ...); give one with --items-path (or set "
            "ingest.files.items_path), or use another --protocol"
        )
    if schema is None or not schema:
        schema = content_schema(items, config)
    if not schema:
        found = [c for c in items.columns if c != "item_id"]
        raise DataError(
            f"source {source!r}: the item catalogue has no content columns (found {found}); "
            "expected text, categories, numbers, coordinates, vectors or images describing "
            "each item; declare them in [content] (e.g. RECPIPE__CONTENT__TEXT='[\"title\"]'), "
            "or use another --protocol"
        )
    return CatalogueContent(items, schema, config)


#: users-table columns never read as attributes: MovieLens' ``zip`` is nearly one value per
#: user (795 codes for 943 users in ML-100K), so as a category it is a second user id the
#: history already gives, and as a number (what detection would make of it) it means nothing
USER_COLUMNS_LEFT_OUT = ("zip",)


def users_catalogue(users: pd.DataFrame | None, config: ContentConfig) -> CatalogueContent | None:
    """A source's users table (``user_id`` plus attribute columns: MovieLens' age, gender,
    occupation) as a catalogue whose rows are users, for the ``user_content`` fit input:
    ``users_catalogue(...).content(user_ids)`` encodes them as item content is (numbers
    z-scored, categories as ids), row i for ``user_ids[i]``. The columns are detected as an
    items table's are, :data:`USER_COLUMNS_LEFT_OUT` left out; None without a users table
    or without attribute columns."""
    from tasks.data.content import content_schema

    if users is None or users.empty or "user_id" not in users:
        return None
    table = users.drop(columns=[c for c in USER_COLUMNS_LEFT_OUT if c in users])
    table = table.rename(columns={"user_id": "item_id"})
    schema = content_schema(table, config)
    return CatalogueContent(table, schema, config) if schema else None
