"""The item catalogue's content columns: their kinds, declared or detected, and their values.

A :class:`ContentSchema` says which catalogue column holds which kind of content
(``text``, ``category``, ``categories``, ``numeric``, ``coordinates``, ``vector``,
``image``). :func:`content_schema` builds it from the ``[content]`` section
(tasks/config/content.py): declared columns first (a missing one is a ``DataError``),
then, with ``detect``, the other columns by what they hold (:func:`detect_kind`).
Ingest keeps those columns in the raw items table, with image paths resolved against
the catalogue's folder (:func:`resolve_images`), and writes the schema beside it as
``items_content.json``; validation and the features read it from there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tasks.config import ContentConfig
from tasks.errors import DataError

Kind = Literal["text", "category", "categories", "numeric", "coordinates", "vector", "image"]
KINDS: tuple[Kind, ...] = (
    "text",
    "category",
    "categories",
    "numeric",
    "coordinates",
    "vector",
    "image",
)
SCHEMA_FILE = "items_content.json"
# Never content: the id, the availability and metadata flags, the provenance of ingest.
NOT_CONTENT = {
    "item_id",
    "available",
    "metadata_missing",
    "ingest_issue",
    "source_file",
    "source_row",
    "source_text",
}
LATITUDE_NAMES = ("lat", "latitude")
LONGITUDE_NAMES = ("lon", "lng", "long", "longitude")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SAMPLE = 2000  # values looked at to detect a column's kind
_FLOAT_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class ContentColumn:
    """One kind of content of the items: its name, kind, source column(s) (latitude and
    longitude for coordinates) and whether the config declared it."""

    name: str
    kind: Kind
    columns: tuple[str, ...]
    declared: bool = False


@dataclass(frozen=True)
class ContentSchema:
    """The catalogue's content columns, in order, and the separator of multi-valued ones."""

    columns: tuple[ContentColumn, ...] = ()
    separator: str = "|"

    def __bool__(self) -> bool:
        return bool(self.columns)

    @property
    def source_columns(self) -> list[str]:
        return [c for column in self.columns for c in column.columns]

    def of_kind(self, kind: Kind) -> list[ContentColumn]:
        return [c for c in self.columns if c.kind == kind]

    def to_json(self) -> str:
        return json.dumps(
            {"separator": self.separator, "columns": [asdict(c) for c in self.columns]}, indent=2
        )

    @classmethod
    def from_json(cls, text: str) -> ContentSchema:
        data = json.loads(text)
        columns = tuple(
            ContentColumn(c["name"], c["kind"], tuple(c["columns"]), bool(c.get("declared")))
            for c in data["columns"]
        )
        return cls(columns, data.get("separator", "|"))

    @classmethod
    def read(cls, path: Path | str | None) -> ContentSchema:
        """The schema saved at ``path``; empty when there is none."""
        if path is None or not Path(path).is_file():
            return cls()
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def content_schema(
    items: pd.DataFrame, config: ContentConfig, base: Path | None = None
) -> ContentSchema:
    """The content columns of the catalogue ``items``: declared, then detected.
    ``base``: the folder relative image paths start from (detection looks for the files)."""
    found = list(items.columns)
    declared = _declared(config)
    missing = [(kind, c) for kind, cols in declared for c in cols if c not in found]
    if missing:
        wanted = ", ".join(f"{c!r} ({kind})" for kind, c in missing)
        raise DataError(
            f"item catalog: content column(s) {wanted} declared in [content] but missing; "
            f"found {found}; fix the names in [content] (or RECPIPE__CONTENT__*) or add the "
            "columns to the catalogue"
        )
    columns = [ContentColumn(_name(kind, cols), kind, tuple(cols), True) for kind, cols in declared]
    if config.detect:
        taken = {c for column in columns for c in column.columns}
        taken |= NOT_CONTENT | set(config.ignore)
        columns += _detected(items, [c for c in found if c not in taken], config, base)
    return ContentSchema(tuple(columns), config.separator)


def _declared(config: ContentConfig) -> list[tuple[Kind, list[str]]]:
    out: list[tuple[Kind, list[str]]] = []
    for kind in KINDS:
        if kind == "coordinates":
            out += [("coordinates", [p.latitude, p.longitude]) for p in config.coordinates]
        else:
            out += [(kind, [c]) for c in getattr(config, kind)]
    return out


def _name(kind: Kind, columns: list[str]) -> str:
    return "_".join(columns) if kind == "coordinates" else columns[0]


def _detected(
    items: pd.DataFrame, candidates: list[str], config: ContentConfig, base: Path | None
) -> list[ContentColumn]:
    out = []
    lower = {c.lower(): c for c in candidates}
    lat = next((lower[n] for n in LATITUDE_NAMES if n in lower), None)
    lon = next((lower[n] for n in LONGITUDE_NAMES if n in lower), None)
    if lat and lon and all(_numeric_share(items[c]) >= 0.9 for c in (lat, lon)):
        out.append(ContentColumn(_name("coordinates", [lat, lon]), "coordinates", (lat, lon)))
        candidates = [c for c in candidates if c not in (lat, lon)]
    for column in candidates:
        kind = detect_kind(items[column], config.separator, base)
        if kind is not None:
            out.append(ContentColumn(column, kind, (column,)))
    return out


def detect_kind(values: pd.Series, separator: str = "|", base: Path | None = None) -> Kind | None:
    """The kind of content a column holds, judged on a sample of its values; None: none."""
    present = values.dropna()
    if present.empty:
        return None
    sample = present.iloc[:SAMPLE]
    if pd.api.types.is_bool_dtype(values.dtype):
        return "category"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    if all(_is_sequence(v) for v in sample):
        return "vector" if all(parse_vector(v) is not None for v in sample) else None
    text = sample.astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return None
    if text.map(_looks_like_vector).mean() >= 0.9:
        return "vector"
    if text.str.lower().str.endswith(IMAGE_SUFFIXES).mean() >= 0.9:
        return "image" if any(image_path(v, base).is_file() for v in text.iloc[:50]) else None
    if _numeric_share(text) >= 0.95:
        return "numeric"
    if text.str.contains(separator, regex=False).mean() >= 0.05:
        pieces = {p.strip() for v in text for p in v.split(separator)}
        if len(pieces) <= max(50, len(text) // 2):
            return "categories"
    distinct = text.nunique() / len(text)
    spaced = text.str.contains(" ", regex=False).mean() >= 0.5
    if distinct >= 0.5 and (spaced or text.str.len().mean() >= 20):
        return "text"
    if text.nunique() <= max(2, len(text) // 2):
        return "category"
    return None


def _numeric_share(values: pd.Series) -> float:
    present = values.dropna()
    if present.empty:
        return 0.0
    parsed = pd.to_numeric(present.iloc[:SAMPLE], errors="coerce")
    return float(parsed.notna().mean())


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _looks_like_vector(text: str) -> bool:
    vector = parse_vector(text)
    return vector is not None and len(vector) >= 2


def parse_vector(value: Any) -> np.ndarray | None:
    """A vector of floats from a list/array or from text ("[0.1, 0.2]", "0.1 0.2",
    "0.1;0.2"); None when it is not one (non-numbers, empty). Non-finite numbers are
    kept: validation says which."""
    if value is None:
        return None
    if _is_sequence(value):
        try:
            out = np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return None
        return out if out.size else None
    if not isinstance(value, str):
        return None
    body = value.strip().strip("[]()").strip()
    if not body:
        return None
    try:
        return np.array([float(p) for p in _FLOAT_SPLIT.split(body) if p], dtype=np.float64)
    except ValueError:
        return None


def image_path(value: Any, base: Path | None) -> Path:
    """Where an image value points: an absolute path as it is, a relative one under
    ``base`` (the catalogue's folder)."""
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() or base is None else base / path


def resolve_images(items: pd.DataFrame, schema: ContentSchema, base: Path | None) -> pd.DataFrame:
    """``items`` with each image column's paths made absolute against ``base`` (a copy)."""
    images = [c.columns[0] for c in schema.of_kind("image")]
    if not images or base is None:
        return items
    out = items.copy()
    for column in images:
        out[column] = pd.array(
            [None if _missing(v) else str(image_path(v, base).resolve()) for v in out[column]],
            dtype="str",
        )
    return out


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


def content_columns(items: pd.DataFrame, schema: ContentSchema) -> list[str]:
    """The columns of ``items`` the schema reads, in the catalogue's order."""
    wanted = set(schema.source_columns)
    return [c for c in items.columns if c in wanted]


def describe(schema: ContentSchema) -> dict[str, list[str]]:
    """Content names by kind, for summaries (``{"text": ["description"], ...}``)."""
    out: dict[str, list[str]] = {}
    for column in schema.columns:
        out.setdefault(column.kind, []).append(column.name)
    return out


def image_files(items: pd.DataFrame, schema: ContentSchema) -> Iterable[Path]:
    """The distinct image files the catalogue names (absolute after ingest), sorted."""
    paths = {
        str(v) for c in schema.of_kind("image") for v in items[c.columns[0]] if not _missing(v)
    }
    return [Path(p) for p in sorted(paths)]


def content_digest(items_path: Path | str | None, schema_path: Path | str | None) -> str | None:
    """sha256 of what the content of a catalogue depends on: its schema, the items table
    and the bytes of every image file it names (a missing file counts as missing); None
    without content."""
    import hashlib

    from tasks.storage.cache import file_digest

    schema = ContentSchema.read(schema_path)
    if not schema or items_path is None or not Path(items_path).is_file():
        return None
    digest = hashlib.sha256(schema.to_json().encode())
    digest.update(file_digest(items_path).encode())
    images = [c.columns[0] for c in schema.of_kind("image")]
    if images:
        items = pd.read_parquet(items_path, columns=images)
        for path in image_files(items, schema):
            digest.update(str(path).encode())
            digest.update((file_digest(path) if path.is_file() else "missing").encode())
    return digest.hexdigest()
