"""Validate the item catalogue's content: compute each check (parse, read the image
files), let GX validate what they found (``expectations/content.py``), then null the
failing values and list them in the content quarantine, with their reasons.

Items are never dropped here: an item whose image does not decode keeps its other
content and its interactions, and is without an image. The accepted items come back
with typed content: vectors as lists of floats, numbers and coordinates as floats,
images as absolute paths.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from expectations.content import (
    COORDINATES_NOT_NUMBERS,
    COORDINATES_OUT_OF_RANGE,
    IMAGE_MISSING,
    IMAGE_UNREADABLE,
    NOT_A_VECTOR,
    NOT_FINITE,
    SUITE_NAME,
    TEXT_TOO_LONG,
    VALUE_CHARS,
    VECTOR_LENGTH,
    VECTOR_NOT_FINITE,
    ContentCheck,
    ContentLimits,
    build_content_suite,
    suite_frame,
)
from expectations.outcome import check_counts
from expectations.runner import SuiteRunner
from tasks.data.content import ContentColumn, ContentSchema, parse_vector
from tasks.storage.shared_files import locked

QUARANTINE_COLUMNS = ["item_id", "content", "kind", "value", "reason"]


@dataclass(frozen=True)
class ContentResult:
    """The items with their bad content nulled, the quarantined values, the figures."""

    items: pd.DataFrame
    quarantined: pd.DataFrame  # item_id, content, kind, value, reason
    with_content: dict[str, int] = field(default_factory=dict)  # items having each content

    def summary(self) -> dict[str, Any]:
        reasons = Counter(self.quarantined["reason"])
        return {
            "items": len(self.items),
            "values_quarantined": len(self.quarantined),
            "quarantined_by_reason": dict(sorted(reasons.items())),
            "items_with": dict(self.with_content),
        }

    @property
    def accounting(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in self.summary()["quarantined_by_reason"].items())
        return (
            f"content: {len(self.items)} items checked; {len(self.quarantined)} values "
            f"quarantined ({reasons or 'none'}); items and interactions kept"
        )


def validate_content(
    items: pd.DataFrame,
    schema: ContentSchema,
    limits: ContentLimits,
    *,
    gx_root: Path,
    run_name: str | None = None,
) -> ContentResult:
    """Check ``items``' content (not mutated) as ``schema`` types it."""
    items = items.reset_index(drop=True)
    typed, shown, checks = {}, {}, []
    for column in schema.columns:
        values, text, found = _checks(items, column, limits)
        typed[column.name], shown[column.name] = values, text
        checks += found
    if checks:
        runner = SuiteRunner(Path(gx_root), run_name, lock=locked)
        results = runner.run(build_content_suite(checks), suite_frame(shown, checks), "SUMMARY")
        runner.finish()
        check_counts(SUITE_NAME, results, {c.column: int(c.mask.sum()) for c in checks})
    out = items.copy()
    bad_rows: dict[tuple[int, str], list[str]] = {}
    for check in checks:
        for i in np.flatnonzero(check.mask).tolist():
            bad_rows.setdefault((i, check.content), []).append(check.what)
    by_name = {c.name: c for c in schema.columns}
    for column in schema.columns:
        bad = np.zeros(len(items), dtype=bool)
        bad[[i for i, name in bad_rows if name == column.name]] = True
        for source, values in zip(column.columns, typed[column.name], strict=True):
            out[source] = _kept(items[source], values, column.kind, bad)
    rows = [
        {
            "item_id": str(items["item_id"].iloc[i]),
            "content": name,
            "kind": by_name[name].kind,
            "value": _cut(shown[name].iloc[i]),
            "reason": f"{name} ({by_name[name].kind}): " + "; ".join(whats),
        }
        for (i, name), whats in sorted(bad_rows.items())
    ]
    quarantined = pd.DataFrame(rows, columns=QUARANTINE_COLUMNS).astype("str")
    present = {c.name: int(out[c.columns[0]].notna().sum()) for c in schema.columns}
    return ContentResult(out, quarantined, present)


def _kept(original: pd.Series, typed: pd.Series, kind: str, bad: np.ndarray) -> pd.Series:
    """The column with its bad values nulled: as the catalogue typed it where that is
    already the kind's type (text, categories, a numeric column), else the typed values."""
    numeric = kind in ("numeric", "coordinates") and pd.api.types.is_numeric_dtype(original)
    keep = original if numeric or kind in ("text", "category", "categories") else typed
    good = pd.Series(~bad, index=keep.index)
    return keep.where(good, None) if keep.dtype == object else keep.where(good)


def _checks(
    items: pd.DataFrame, column: ContentColumn, limits: ContentLimits
) -> tuple[list[pd.Series], pd.Series, list[ContentCheck]]:
    """The typed values of one content column (one series per source column), its values
    as text (for messages), and its failing checks."""
    raw = [items[c] for c in column.columns]
    shown = raw[0].astype(object).map(_as_text)
    present = raw[0].notna().to_numpy()

    def check(what: str, mask: np.ndarray) -> ContentCheck:
        return ContentCheck(column.name, column.kind, what, np.asarray(mask, dtype=bool))

    if column.kind == "text":
        text = raw[0].astype("str")
        long = text.str.len().fillna(0).to_numpy() > limits.max_text_chars
        return [text], shown, [check(TEXT_TOO_LONG.format(limit=limits.max_text_chars), long)]
    if column.kind in ("category", "categories"):
        return [raw[0].astype("str")], shown, []
    if column.kind == "numeric":
        number = pd.to_numeric(raw[0], errors="coerce").astype("float64")
        bad = present & ~np.isfinite(number.to_numpy())
        return [number], shown, [check(NOT_FINITE, bad)]
    if column.kind == "coordinates":
        return _coordinate_checks(raw, check)
    if column.kind == "vector":
        return _vector_checks(raw[0], shown, check)
    return _image_checks(raw[0], shown, check)


def _coordinate_checks(raw: list[pd.Series], check: Any) -> tuple:
    lat, lon = (pd.to_numeric(r, errors="coerce").astype("float64") for r in raw)
    lat_text, lon_text = (r.astype(object).map(_as_text).fillna("") for r in raw)
    shown = (lat_text + ", " + lon_text).where(raw[0].notna() | raw[1].notna(), None)
    given = raw[0].notna().to_numpy() | raw[1].notna().to_numpy()
    a, b = lat.to_numpy(), lon.to_numpy()
    numbers = np.isfinite(a) & np.isfinite(b)
    with np.errstate(invalid="ignore"):
        in_range = (np.abs(a) <= 90) & (np.abs(b) <= 180)
    checks = [
        check(COORDINATES_NOT_NUMBERS, given & ~numbers),
        check(COORDINATES_OUT_OF_RANGE, numbers & ~in_range),
    ]
    return [lat, lon], shown, checks


def _vector_checks(raw: pd.Series, shown: pd.Series, check: Any) -> tuple:
    parsed = [None if _missing(v) else parse_vector(v) for v in raw]
    given = np.array([not _missing(v) for v in raw], dtype=bool)
    parsed_ok = np.array([v is not None for v in parsed], dtype=bool)
    finite = np.array([v is not None and bool(np.isfinite(v).all()) for v in parsed])
    lengths = Counter(len(v) for v in parsed if v is not None)
    common = max(sorted(lengths), key=lambda n: lengths[n]) if lengths else 0
    wrong = np.array([v is not None and len(v) != common for v in parsed], dtype=bool)
    values = pd.Series(
        [None if v is None else v.astype(np.float32).tolist() for v in parsed], dtype=object
    )
    checks = [
        check(NOT_A_VECTOR, given & ~parsed_ok),
        check(VECTOR_NOT_FINITE, parsed_ok & ~finite),
        check(VECTOR_LENGTH.format(length=common), parsed_ok & finite & wrong),
    ]
    return [values], shown, checks


def _image_checks(raw: pd.Series, shown: pd.Series, check: Any) -> tuple:
    paths = raw.astype("str")
    missing = np.zeros(len(raw), dtype=bool)
    unreadable = np.zeros(len(raw), dtype=bool)
    for i, path in enumerate(paths):
        if pd.isna(path) or not str(path).strip():
            continue
        if not Path(path).is_file():
            missing[i] = True
        elif not decodes(Path(path)):
            unreadable[i] = True
    return [paths], shown, [check(IMAGE_MISSING, missing), check(IMAGE_UNREADABLE, unreadable)]


def decodes(path: Path) -> bool:
    """Whether Pillow reads the whole image at ``path``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return False
    return True


def _as_text(value: Any) -> Any:
    if _missing(value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        head = ", ".join(str(v) for v in list(value)[:20])
        return f"[{head}{', ...' if len(value) > 20 else ''}]"
    return str(value)


def _cut(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)[:VALUE_CHARS]


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    return bool(pd.isna(value)) or (isinstance(value, str) and not value.strip())
