"""Keras encoders that turn an item's typed content into one vector.

One small encoder per kind of :class:`models.content.ItemContent`, each giving ``dim``
floats, multiplied by the item's mask for that content (missing content contributes
zeros), concatenated and mixed by one Dense layer:

    text        Embedding(size, dim), mean over the non-padding tokens
    category    Embedding(size, dim)
    categories  Embedding(size, dim), mean over the non-padding values
    numeric     Dense(dim) over (value, mask)
    coordinates Dense(dim, ReLU) -> Dense(dim, ReLU) over the unit vector, plus a learned
                vector per grid cell of 1, 0.1 and 0.01 degrees (hashed ids)
    vector      Dense(dim)
    image       uint8 / 255 -> Conv2D 16 3x3 stride 2 ReLU -> Conv2D 32 3x3 stride 2 ReLU
                -> global average pooling -> Dense(dim), trained end to end

:func:`content_arrays` turns ItemContent rows into the dict of numpy arrays the encoder's
inputs take (:func:`content_keys` names them: ``content_<name>`` and
``content_<name>_mask``). TensorFlow/Keras are imported inside functions only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.content import ID_KINDS, KINDS, ItemContent
from models.memory import FLOAT32

#: filters of the image encoder's two convolutions
CONV_FILTERS = (16, 32)
#: a place's grid cells (degrees of latitude and longitude) and the rows their ids are
#: hashed into, per cell size
CELL_DEGREES = (1.0, 0.1, 0.01)
CELL_BUCKETS = 1 << 14


def content_keys(names: Collection[str]) -> dict[str, str]:
    """Each content's input name: ``content_<name>`` with characters other than letters,
    digits and ``_`` replaced by ``_`` (a number appended where two names would meet)."""
    keys: dict[str, str] = {}
    for name in names:
        key = "content_" + re.sub(r"\W", "_", name, flags=re.ASCII)
        while key in keys.values():
            key += "_"
        keys[name] = key
    return keys


def select_content(content: ItemContent, skip: Collection[str], who: str) -> ItemContent:
    """``content`` without the contents named in ``skip``, by name or by kind (``image``);
    a ValueError for an entry that is neither."""
    unknown = sorted(set(skip) - set(content.names) - set(KINDS))
    if unknown:
        raise ValueError(
            f"{who}: skip_content has {unknown}, which is neither a content of the catalogue "
            f"({content.names}) nor a kind ({', '.join(KINDS)}); name a content or a kind"
        )
    return content.only(
        n for n, kind in content.kinds.items() if n not in skip and kind not in skip
    )


def check_layout(fitted: ItemContent, given: ItemContent, who: str) -> ItemContent:
    """``given`` restricted to the contents the model was fitted on, checked against them
    (same kinds, same vector and image shapes), or a ValueError saying what differs."""
    missing = [n for n in fitted.names if n not in given.kinds]
    if missing:
        raise ValueError(
            f"{who}: the content has no {missing}; the model was fitted on {fitted.names}; "
            "pass the catalogue's content encoded as at fit (the same snapshot's features)"
        )
    given = given.only(fitted.names)
    for name, kind in fitted.kinds.items():
        if given.kinds[name] != kind:
            raise ValueError(
                f"{who}: content {name!r} is {given.kinds[name]!r}, the model read {kind!r}"
            )
        if kind in ("vector", "image", "coordinates"):
            want, got = fitted.values[name].shape[1:], given.values[name].shape[1:]
            if want != got:
                raise ValueError(
                    f"{who}: content {name!r} has rows of shape {got}, the model read {want}; "
                    "encode it with the settings of the fit (vector length, image size)"
                )
    return given


def content_arrays(content: ItemContent, sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """The encoder's inputs for the rows of ``content``: per content its values (ids int32,
    numbers float32, images uint8 as stored) and its mask (float32 0/1). Ids at or above
    ``sizes[name]`` (default ``content.sizes``: a vocabulary grown since the fit) become 1,
    the unknown id."""
    sizes = content.sizes if sizes is None else sizes
    out: dict[str, Any] = {}
    for name, key in content_keys(content.names).items():
        kind, values = content.kinds[name], content.values[name]
        if kind in ID_KINDS:
            ids = np.asarray(values, dtype=np.int32)
            values = np.where(ids >= sizes[name], 1, ids).astype(np.int32)
        elif kind == "image":
            values = np.asarray(values, dtype=np.uint8)
        else:
            values = np.asarray(values, dtype=np.float32)
        out[key] = values
        out[key + "_mask"] = np.asarray(content.masks[name], dtype=np.float32)
    return out


def content_encoder(content: ItemContent, dim: int, init: Any) -> tuple[dict[str, Any], Any]:
    """Keras inputs (named as :func:`content_arrays` names them) and the item's content
    vector (``dim`` floats) for the layout of ``content`` (its kinds, sizes and shapes).
    ``init``: a :class:`models.keras_base.SeededInitializers`."""
    import keras
    from keras import ops

    inputs: dict[str, Any] = {}
    parts = []
    for name, key in content_keys(content.names).items():
        kind, values = content.kinds[name], content.values[name]
        mask = keras.Input(shape=(), name=key + "_mask")
        inputs[key + "_mask"] = mask
        if kind in ID_KINDS:
            shape: tuple[int | None, ...] = () if kind == "category" else (None,)
            ids = keras.Input(shape=shape, dtype="int32", name=key)
            table = keras.layers.Embedding(
                content.sizes[name], dim, embeddings_initializer=init.uniform(), name=key + "_emb"
            )
            vector = table(ids) if kind == "category" else _masked_mean(table(ids), ids)
        elif kind == "image":
            ids = keras.Input(shape=values.shape[1:], dtype="uint8", name=key)
            x = ops.cast(ids, "float32") / 255.0
            for n, filters in enumerate(CONV_FILTERS):
                x = keras.layers.Conv2D(
                    filters,
                    3,
                    strides=2,
                    activation="relu",
                    kernel_initializer=init.glorot(),
                    name=f"{key}_conv{n}",
                )(x)
            x = keras.layers.GlobalAveragePooling2D(name=key + "_pool")(x)
            vector = keras.layers.Dense(dim, kernel_initializer=init.glorot(), name=key + "_out")(x)
        else:
            ids = keras.Input(shape=values.shape[1:], name=key)
            if kind == "numeric":
                x = ops.stack([ids, mask], axis=-1)
                layers: list[tuple[int, str | None]] = [(dim, None)]
            elif kind == "coordinates":
                x, layers = ids, [(dim, "relu"), (dim, "relu")]
                cells = _place_cells(ids, dim, key, init)
            else:  # vector
                x, layers = ids, [(dim, None)]
            for n, (units, activation) in enumerate(layers):
                x = keras.layers.Dense(
                    units,
                    activation=activation,
                    kernel_initializer=init.glorot(),
                    name=f"{key}_dense{n}",
                )(x)
            vector = x if kind != "coordinates" else x + cells
        inputs[key] = ids
        parts.append(vector * ops.expand_dims(mask, -1))
    if not parts:
        raise ValueError("content encoder: no content to encode")
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="contents")(parts)
    out = keras.layers.Dense(dim, kernel_initializer=init.glorot(), name="content_vector")(x)
    return inputs, out


def _place_cells(xyz: Any, dim: int, key: str, init: Any) -> Any:
    """The sum of one learned vector per grid cell the place falls in, at each of
    ``CELL_DEGREES`` (about 110 km, 11 km and 1.1 km), cell ids hashed into
    ``CELL_BUCKETS`` rows: neighbouring places share cells, so a venue nobody has been to
    gets what its neighbourhood taught (the unit vector alone tells cities apart, hardly
    streets: two venues of a city differ by about 0.001 in it)."""
    import math

    import keras
    from keras import ops

    lat = ops.arcsin(ops.clip(xyz[:, 2], -1.0, 1.0)) * (180.0 / math.pi) + 90.0
    lon = ops.arctan2(xyz[:, 1], xyz[:, 0]) * (180.0 / math.pi) + 180.0
    total = None
    for n, degrees in enumerate(CELL_DEGREES):
        row = ops.cast(ops.floor(lat / degrees), "int32")
        column = ops.cast(ops.floor(lon / degrees), "int32")
        cell = ops.mod(row * round(360 / degrees + 1) + column, CELL_BUCKETS)
        vector = keras.layers.Embedding(
            CELL_BUCKETS, dim, embeddings_initializer=init.uniform(), name=f"{key}_cells{n}"
        )(cell)
        total = vector if total is None else total + vector
    return total


def _masked_mean(embedded: Any, ids: Any) -> Any:
    """The mean of ``embedded`` (batch x length x dim) over the positions whose id is not 0."""
    from keras import ops

    weights = ops.expand_dims(ops.cast(ops.greater(ids, 0), "float32"), -1)
    total = ops.sum(embedded * weights, axis=1)
    return total / ops.maximum(ops.sum(weights, axis=1), 1.0)


# -- memory -------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentShape:
    """The per-item shape of a catalogue's content, for memory estimates: each content's
    kind, its width (tokens or values per item, vector length, image side) and its ids."""

    kinds: dict[str, str]
    widths: dict[str, int]
    sizes: dict[str, int]

    @classmethod
    def of(cls, content: ItemContent) -> ContentShape:
        widths = {
            name: int(values.shape[1]) if values.ndim > 1 else 1
            for name, values in content.values.items()
        }
        return cls(dict(content.kinds), widths, dict(content.sizes))

    def row_bytes(self) -> int:
        """Bytes of one item's content as kept: ids int32, numbers float32, images uint8,
        plus a one-byte mask per content."""
        total = 0
        for name, kind in self.kinds.items():
            width = self.widths[name]
            if kind == "image":
                total += width * width * 3
            elif kind == "coordinates":
                total += 3 * FLOAT32
            else:
                total += width * FLOAT32
            total += 1
        return total

    def encoder_params(self, dim: int) -> int:
        """Weights of :func:`content_encoder` over this layout."""
        total = dim * (dim * len(self.kinds)) + dim  # the mixing Dense
        for name, kind in self.kinds.items():
            if kind in ID_KINDS:
                total += self.sizes[name] * dim
            elif kind == "image":
                c1, c2 = CONV_FILTERS
                total += (27 * c1 + c1) + (9 * c1 * c2 + c2) + (c2 * dim + dim)
            elif kind == "coordinates":
                total += (3 * dim + dim) + (dim * dim + dim)
                total += len(CELL_DEGREES) * CELL_BUCKETS * dim
            elif kind == "numeric":
                total += 2 * dim + dim
            else:
                total += self.widths[name] * dim + dim
        return total

    def batch_activation_bytes(self, batch: int, dim: int) -> int:
        """Float32 activations of one batch through the encoder (the images' convolutions
        dominate: side/2 and side/4 squared maps of 16 and 32 filters, and the float copy
        of the pixels), counted twice for their gradients."""
        cells = 0
        for name, kind in self.kinds.items():
            width = self.widths[name]
            if kind == "image":
                half, quarter = (width + 1) // 2, (width + 3) // 4
                c1, c2 = CONV_FILTERS
                cells += width * width * 3 + half * half * c1 + quarter * quarter * c2
            elif kind in ("text", "categories"):
                cells += width * dim
            cells += 2 * dim
        return 2 * batch * cells * FLOAT32


#: what a content model assumes when the catalogue's content is not known: a text of
#: 64 tokens, a category and 32 x 32 images, over 20,000 ids each (the content
#: features' defaults, tasks/config/content.py)
ASSUMED_CONTENT = ContentShape(
    kinds={"text": "text", "category": "category", "image": "image"},
    widths={"text": 64, "category": 1, "image": 32},
    sizes={"text": 20_000, "category": 20_000},
)


# -- persistence ----------------------------------------------------------------------
def save_content(content: ItemContent, folder: Path) -> None:
    """``content`` under ``folder``: ``content.json`` (names, kinds, sizes) and per content
    ``<i>.npy`` (its values, images included) and ``<i>.mask.npy``; nothing when empty."""
    if not content.kinds:
        return
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"names": content.names, "kinds": content.kinds, "sizes": content.sizes}
    (folder / "content.json").write_text(json.dumps(meta, indent=2))
    for i, name in enumerate(content.names):
        np.save(folder / f"{i}.npy", np.asarray(content.values[name]))
        np.save(folder / f"{i}.mask.npy", np.asarray(content.masks[name]))


def load_content(folder: Path) -> ItemContent:
    """What :func:`save_content` wrote (empty content when it wrote nothing)."""
    if not (folder / "content.json").is_file():
        return ItemContent({}, {}, {})
    meta = json.loads((folder / "content.json").read_text())
    names = meta["names"]
    return ItemContent(
        {n: meta["kinds"][n] for n in names},
        {n: np.load(folder / f"{i}.npy") for i, n in enumerate(names)},
        {n: np.load(folder / f"{i}.mask.npy") for i, n in enumerate(names)},
        {n: int(v) for n, v in meta["sizes"].items()},
    )
