"""The items' content as model-ready features, beside the other features of the run date.

From the validated catalogue (``items.parquet``, content typed and checked) and its
schema (``items_content.json``, tasks/data/content.py), into the feature snapshot:

    content.parquet        item_id, item_idx, has_<name> per content, and per kind:
                           text        <name>: max_tokens token ids (0 padding, 1 unknown)
                           category    <name>: one id (0 none, 1 unknown, 2.. values)
                           categories  <name>: max_tokens ids, padded with 0
                           numeric     <name>: z-score (0 where missing)
                           coordinates <name>: unit vector (x, y, z) on the sphere
                           vector      <name>: L2-normalised floats (zeros where missing)
    content_<name>.npy     per image content: items x size x size x 3, uint8 RGB
    content_stats.json     run date, kinds, vocabularies, numeric mean / std, dims

Rows: the snapshot's item vocabulary first, in ``item_idx`` order (row i is item i),
then the catalogue's items without interactions (``item_idx`` null), sorted by id, so
items nobody has seen yet have content too. Coordinates are unit vectors rather than
radians: neighbours stay neighbours across the date line and at the poles. Images are a
separate ``.npy`` rather than bytes in the Parquet: one fixed-shape uint8 array a model
reads (or memory-maps) in one call, without decoding a row at a time.
:func:`load_content_features` reads it all back as arrays.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.content import ItemContent
from tasks.config import ContentConfig
from tasks.data.content import ContentColumn, ContentSchema

CONTENT_FILE = "content.parquet"
STATS_FILE = "content_stats.json"
PAD, UNKNOWN = 0, 1  # reserved ids of texts, categories and multi-valued categories
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: Any) -> list[str]:
    """Lower-cased word tokens (letters and digits) of a text; none for a missing one."""
    return [] if text is None or pd.isna(text) else _TOKEN.findall(str(text).lower())


def build_vocabulary(lists: list[list[str]], size: int) -> list[str]:
    """The ``size - 2`` most frequent values (ties by value), after the two reserved ids."""
    counts = Counter(v for values in lists for v in values)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [v for v, _ in ranked[: max(size - 2, 0)]]


def encode_ids(lists: list[list[str]], vocabulary: list[str], length: int) -> np.ndarray:
    """Each list as ``length`` ids (cut or padded with 0): 2.. in-vocabulary, 1 unknown."""
    index = {v: i + 2 for i, v in enumerate(vocabulary)}
    out = np.zeros((len(lists), length), dtype=np.int32)
    for row, values in enumerate(lists):
        ids = [index.get(v, UNKNOWN) for v in values[:length]]
        out[row, : len(ids)] = ids
    return out


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Latitude / longitude in degrees as (x, y, z) on the unit sphere; zeros where missing."""
    phi, lam = np.radians(lat), np.radians(lon)
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=1)
    return np.nan_to_num(xyz, nan=0.0).astype(np.float32)


def normalised_vectors(values: pd.Series) -> tuple[np.ndarray, int]:
    """The vectors as rows, L2-normalised (zeros where missing); their length."""
    dim = max((len(v) for v in values if v is not None), default=0)
    out = np.zeros((len(values), dim), dtype=np.float32)
    for row, v in enumerate(values):
        if v is not None and len(v) == dim:
            out[row] = np.asarray(v, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0), dim


def load_image(path: Any, size: int) -> np.ndarray | None:
    """The image at ``path``, centre-cropped and resized to size x size RGB; None if unreadable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if path is None or pd.isna(path):
        return None
    try:
        with Image.open(path) as image:
            fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
            return np.asarray(fitted, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def aligned_items(items: pd.DataFrame, vocabulary: pd.DataFrame) -> pd.DataFrame:
    """One row per vocabulary item (``item_idx`` order), then the catalogue's other items."""
    table = items.assign(item_id=items["item_id"].astype("str")).drop_duplicates("item_id")
    known = vocabulary.sort_values("item_idx")[["item_id", "item_idx"]].astype(
        {"item_id": "str", "item_idx": "Int64"}
    )
    extra = sorted(set(table["item_id"]) - set(known["item_id"]))
    others = pd.DataFrame({"item_id": pd.array(extra, dtype="str"), "item_idx": pd.NA})
    rows = pd.concat([known, others.astype({"item_idx": "Int64"})], ignore_index=True)
    return rows.merge(table, on="item_id", how="left", sort=False)


def content_frames(
    rows: pd.DataFrame, schema: ContentSchema, config: ContentConfig, images_to: Path | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The content columns of ``rows`` (aligned items) and their statistics; image arrays
    are written into ``images_to`` (None: kept in the returned columns)."""
    columns: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for column in schema.columns:
        values, mask, info = _encode(rows, column, schema.separator, config)
        if column.kind == "image" and images_to is not None:
            np.save(images_to / f"content_{column.name}.npy", values)
            info["file"] = f"content_{column.name}.npy"
        else:
            columns[column.name] = values
        columns[f"has_{column.name}"] = mask
        stats[column.name] = {"kind": column.kind, "items_with": int(mask.sum()), **info}
    return columns, stats


def _encode(
    rows: pd.DataFrame, column: ContentColumn, separator: str, config: ContentConfig
) -> tuple[np.ndarray, np.ndarray, dict]:
    raw = rows[column.columns[0]]
    if column.kind in ("text", "categories"):
        lists = (
            [tokens(v) for v in raw]
            if column.kind == "text"
            else [
                [p.strip() for p in str(v).split(separator) if p.strip()] if pd.notna(v) else []
                for v in raw
            ]
        )
        vocabulary = build_vocabulary(lists, config.vocabulary_size)
        mask = np.array([bool(v) for v in lists])
        length = config.max_tokens
        if column.kind == "categories":
            length = max(1, min(length, max((len(v) for v in lists), default=1)))
        return encode_ids(lists, vocabulary, length), mask, {"vocabulary": vocabulary}
    if column.kind == "category":
        lists = [[str(v).strip()] if pd.notna(v) and str(v).strip() else [] for v in raw]
        vocabulary = build_vocabulary(lists, config.vocabulary_size)
        ids = encode_ids(lists, vocabulary, 1)[:, 0]
        return ids, ids != PAD, {"vocabulary": vocabulary}
    if column.kind == "numeric":
        number = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        mask = np.isfinite(number)
        mean = float(number[mask].mean()) if mask.any() else 0.0
        std = float(number[mask].std()) if mask.sum() > 1 else 0.0
        scaled = np.where(mask, (number - mean) / (std if std > 0 else 1.0), 0.0)
        return scaled.astype(np.float32), mask, {"mean": mean, "std": std}
    if column.kind == "coordinates":
        lat, lon = (
            pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64) for c in column.columns
        )
        mask = np.isfinite(lat) & np.isfinite(lon)
        return unit_vectors(lat, lon), mask, {"columns": list(column.columns), "dim": 3}
    if column.kind == "vector":
        vectors, dim = normalised_vectors(raw.astype(object).where(raw.notna(), None))
        return vectors, np.linalg.norm(vectors, axis=1) > 0, {"dim": dim}
    size = config.image_size
    pixels = np.zeros((len(rows), size, size, 3), dtype=np.uint8)
    mask = np.zeros(len(rows), dtype=bool)
    for row, path in enumerate(raw):
        image = load_image(path, size)
        if image is not None:
            pixels[row], mask[row] = image, True
    return pixels, mask, {"size": [size, size, 3]}


def write_content_features(
    items_path: str, schema_path: str, features_dir: str, config: ContentConfig, run_date: date
) -> dict:
    """Write the content features into the snapshot ``features_dir`` (whose
    ``items.parquet`` is the item vocabulary); what was written, by content."""
    from tasks.storage.shared_files import replace_atomically

    out = Path(features_dir)
    schema = ContentSchema.read(schema_path)
    rows = aligned_items(pd.read_parquet(items_path), pd.read_parquet(out / "items.parquet"))
    columns, stats = content_frames(rows, schema, config, out)
    frame = pd.DataFrame({"item_id": rows["item_id"], "item_idx": rows["item_idx"]})
    for name, values in columns.items():
        frame[name] = list(values) if values.ndim > 1 else values
    replace_atomically(out / CONTENT_FILE, lambda tmp: frame.to_parquet(tmp, index=False))
    meta = {
        "run_date": run_date.isoformat(),
        "items": len(frame),
        "items_in_vocabulary": int(frame["item_idx"].notna().sum()),
        "content": stats,
    }
    (out / STATS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return {
        "items": meta["items"],
        "items_in_vocabulary": meta["items_in_vocabulary"],
        "modalities": {name: s["kind"] for name, s in stats.items()},
        "items_with": {name: s["items_with"] for name, s in stats.items()},
    }


def load_content_features(path: Path | str) -> dict[str, np.ndarray]:
    """The content features of a snapshot (its folder) as arrays, one row per item:
    ``item_id``, ``known`` (in the vocabulary: rows 0..n-1 are items 0..n-1), per content
    ``has_<name>`` and ``<name>`` (2-D for tokens, ids lists, coordinates and vectors;
    items x size x size x 3 uint8 for images, memory-mapped)."""
    folder = Path(path)
    frame = pd.read_parquet(folder / CONTENT_FILE)
    meta = json.loads((folder / STATS_FILE).read_text(encoding="utf-8"))
    out: dict[str, np.ndarray] = {
        "item_id": frame["item_id"].to_numpy(dtype=object),
        "known": frame["item_idx"].notna().to_numpy(),
    }
    for name, info in meta["content"].items():
        out[f"has_{name}"] = frame[f"has_{name}"].to_numpy(dtype=bool)
        if "file" in info:
            out[name] = np.load(folder / info["file"], mmap_mode="r")
        elif frame[name].dtype == object:
            out[name] = np.stack(frame[name].to_numpy()) if len(frame) else np.zeros((0, 0))
        else:
            out[name] = frame[name].to_numpy()
    return out


def item_content(path: Path | str) -> ItemContent | None:
    """The content features of a snapshot (its folder) as the models' ``content`` input
    (:class:`models.content.ItemContent`): rows in ``content.parquet``'s order, the
    vocabulary's items first; None when the snapshot has no content features."""
    folder = Path(path)
    if not (folder / CONTENT_FILE).exists() or not (folder / STATS_FILE).exists():
        return None
    arrays = load_content_features(folder)
    meta = json.loads((folder / STATS_FILE).read_text(encoding="utf-8"))["content"]
    kinds = {name: info["kind"] for name, info in meta.items()}
    sizes = {
        name: len(info.get("vocabulary", [])) + 2
        for name, info in meta.items()
        if info["kind"] in ("text", "category", "categories")
    }
    values = {}
    for name, kind in kinds.items():
        array = arrays[name]
        if kind in ("text", "category", "categories"):
            array = np.asarray(array, dtype=np.int32)
        elif kind != "image":
            array = np.asarray(array, dtype=np.float32)
        values[name] = array
    masks = {name: arrays[f"has_{name}"] for name in kinds}
    return ItemContent(kinds, values, masks, sizes)


def content_item_ids(path: Path | str) -> np.ndarray:
    """The item id of each row of a snapshot's content features (``item_content``'s rows)."""
    return pd.read_parquet(Path(path) / CONTENT_FILE, columns=["item_id"])["item_id"].to_numpy(
        dtype=object
    )


write_content_features_task = task(name="content-features", cache_policy=NO_CACHE)(
    write_content_features
)
