"""The demo catalogue's content: a description and a picture of each item that follow
its genres (``tasks/sources/demo.py``), so content models have a signal to find.

* ``description``: 15 to 40 words, about two in five of them words of the item's genres
  (of its second genre a third of those, when it has one), the rest neutral filler;
* ``image``: a 32 x 32 RGB PNG, ``images/<item_id>.png`` beside the items table. The
  primary genre sets the background's hue (the genres spread evenly around the colour
  wheel) and a motif drawn in a light shade of it (a disc, a square, a diamond, a ring,
  a cross or a triangle, at a seeded place and size); the second genre's colour fills a
  band across (a dark shade of the primary without one); each item's hue, shade and
  pixels carry seeded noise, so no two images are the same, while an image's mean colour
  still tells its primary genre.

:func:`describe_items` draws the texts inside ``generate_demo``; :func:`render_images`
draws the pixels from the catalogue's ``genres``, ``demo_images`` encodes them, and
:func:`write_demo_images` writes them where ingest writes the items table, each file
through a temporary name and a rename. The same seed always gives the same texts and the
same bytes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

IMAGE_SIZE = 32
IMAGES_DIR = "images"
CHUNK = 2048  # images drawn per batch (each batch its own seeded stream)
GENRE_SHARE = 0.4  # share of a description's words taken from the item's genres

GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "Action": ("explosive", "chase", "fistfight", "stunt", "rescue", "heist", "firefight"),
    "Comedy": ("hilarious", "prank", "witty", "awkward", "slapstick", "banter", "mishap"),
    "Drama": ("grief", "struggle", "tender", "betrayal", "redemption", "heartfelt", "loss"),
    "Horror": ("haunted", "demon", "blood", "scream", "cursed", "creature", "nightmare"),
    "Romance": ("love", "kiss", "wedding", "lovers", "courtship", "passion", "heartbreak"),
    "Sci-Fi": ("spaceship", "alien", "robot", "galaxy", "android", "laser", "cyborg"),
    "Documentary": ("interview", "archival", "footage", "filmmaker", "testimony", "factual"),
    "Animation": ("animated", "cartoon", "talking", "colourful", "puppet", "sketch", "toon"),
    "Thriller": ("suspense", "conspiracy", "hostage", "stalker", "twist", "paranoia", "fugitive"),
    "Western": ("cowboy", "saloon", "outlaw", "sheriff", "ranch", "gunslinger", "prairie"),
    "Fantasy": ("dragon", "wizard", "sorcery", "enchanted", "elf", "quest", "spell"),
    "Crime": ("gangster", "mob", "robbery", "smuggler", "cartel", "murder", "police"),
    "Musical": ("song", "dance", "choir", "melody", "singer", "rhythm", "broadway"),
    "Mystery": ("clue", "riddle", "whodunit", "sleuth", "enigma", "puzzle", "vanished"),
    "War": ("soldier", "battle", "trench", "regiment", "siege", "bomber", "platoon"),
    "Adventure": ("expedition", "treasure", "jungle", "explorer", "map", "journey", "raft"),
    "Family": ("kids", "siblings", "puppy", "holiday", "parents", "grandma", "playful"),
    "Biography": ("legacy", "memoir", "portrait", "pioneer", "career", "biopic", "inspiring"),
}
FILLER = (
    "a", "the", "of", "and", "with", "in", "story", "film", "one", "who", "their",
    "world", "finds", "when", "after", "must", "new", "old", "town", "night", "day",
    "years", "people", "two", "friends", "home", "every", "until", "between", "where",
)  # fmt: skip


def describe_items(
    primary: np.ndarray, second: np.ndarray, genres: list[str], rng: np.random.Generator
) -> list[str]:
    """One description per item (module docstring): ``primary`` and ``second`` index
    ``genres`` (``second`` -1: the item has none)."""
    n = len(primary)
    lengths = rng.integers(15, 41, size=n)
    total = int(lengths.sum())
    genre_word = rng.random(total) < GENRE_SHARE
    from_second = rng.random(total) < 1 / 3
    pick = rng.random(total)
    owner = np.repeat(np.arange(n), lengths)
    which = np.where(from_second & (second[owner] >= 0), second[owner], primary[owner])
    words = np.empty(total, dtype=object)
    filler = np.array(FILLER, dtype=object)
    words[~genre_word] = filler[(pick[~genre_word] * len(FILLER)).astype(int)]
    for g, name in enumerate(genres):
        at = genre_word & (which == g)
        lexicon = np.array(GENRE_WORDS[name], dtype=object)
        words[at] = lexicon[(pick[at] * len(lexicon)).astype(int)]
    ends = np.cumsum(lengths)
    out = []
    for start, stop in zip(ends - lengths, ends, strict=True):
        text = " ".join(words[start:stop])
        out.append(text[0].upper() + text[1:] + ".")
    return out


def image_paths(item_ids: Iterable[str]) -> list[str]:
    """Each item's image path, relative to the items table's folder."""
    return [f"{IMAGES_DIR}/{i}.png" for i in item_ids]


def genre_indices(items: pd.DataFrame, genres: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The primary genre of each item and its second one (-1 without), as indices of
    ``genres``, from the catalogue's ``genres`` column ("A" or "A|B")."""
    index = {name: g for g, name in enumerate(genres)}
    parts = [str(v).split("|") for v in items["genres"]]
    unknown = sorted({p for ps in parts for p in ps} - set(index))
    if unknown:
        raise ValueError(
            f"demo items: genres {unknown} are not among the demo's {genres}; expected the "
            "items of generate_demo with the same n_genres"
        )
    primary = np.array([index[ps[0]] for ps in parts], dtype=np.int64)
    second = np.array([index[ps[1]] if len(ps) > 1 else -1 for ps in parts], dtype=np.int64)
    return primary, second


def render_images(
    primary: np.ndarray,
    second: np.ndarray,
    n_genres: int,
    rng: np.random.Generator,
    size: int = IMAGE_SIZE,
) -> np.ndarray:
    """Items x size x size x 3 uint8 RGB pictures (module docstring); ``second`` is -1
    for an item without a second genre."""
    n = len(primary)
    step = 1.0 / n_genres
    hue = primary * step + rng.uniform(-0.12, 0.12, size=n) * step
    sat = rng.uniform(0.55, 0.8, size=n)
    val = rng.uniform(0.65, 0.85, size=n)
    background = _hsv_to_rgb(hue, sat, val)
    light = _hsv_to_rgb(hue, 0.35 * sat, np.minimum(val + 0.15, 1.0))
    band_colour = np.where(
        (second >= 0)[:, None],
        _hsv_to_rgb(np.maximum(second, 0) * step, sat, val),
        _hsv_to_rgb(hue, sat, 0.5 * val),
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    # the band: 6-8 pixels high, across the upper or the lower half
    top = rng.integers(0, size // 3, size=n) + np.where(rng.random(n) < 0.5, 0, 2 * size // 3 - 8)
    height = rng.integers(6, 9, size=n)
    band = (yy[None] >= top[:, None, None]) & (yy[None] < (top + height)[:, None, None])
    # the motif: its shape by the primary genre, around a seeded centre with a seeded radius
    cy = size / 2 + rng.uniform(-4, 4, size=n)
    cx = size / 2 + rng.uniform(-4, 4, size=n)
    radius = rng.uniform(0.2, 0.28, size=n) * size
    motif = _motifs(
        primary % len(_SHAPES),
        yy[None] - cy[:, None, None],
        xx[None] - cx[:, None, None],
        radius[:, None, None],
    )
    pixels = np.broadcast_to(background[:, None, None, :], (n, size, size, 3)).copy()
    pixels = np.where(band[..., None], band_colour[:, None, None, :], pixels)
    pixels = np.where(motif[..., None], light[:, None, None, :], pixels)
    pixels = pixels * 255.0 + rng.normal(0.0, 10.0, size=pixels.shape)
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _disc(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return dy**2 + dx**2 < r**2


def _square(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(dy), np.abs(dx)) < 0.8 * r


def _diamond(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.abs(dy) + np.abs(dx) < r


def _ring(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    d2 = dy**2 + dx**2
    return (d2 < r**2) & (d2 > (0.55 * r) ** 2)


def _cross(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (np.minimum(np.abs(dy), np.abs(dx)) < 0.25 * r) & (
        np.maximum(np.abs(dy), np.abs(dx)) < r
    )


def _triangle(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (dy < 0.7 * r) & (np.abs(dx) < 0.6 * (dy + r))


_SHAPES = (_disc, _square, _diamond, _ring, _cross, _triangle)


def _motifs(shape: np.ndarray, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Each item's motif mask (items x size x size), its shape picked by ``shape``."""
    out = np.zeros(dy.shape, dtype=bool)
    for s, draw in enumerate(_SHAPES):
        rows = np.flatnonzero(shape == s)
        if len(rows):
            out[rows] = draw(dy[rows], dx[rows], r[rows])
    return out


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray | float, v: np.ndarray | float) -> np.ndarray:
    """HSV (hue in turns, any real; saturation and value 0..1) to RGB 0..1, rows x 3."""
    h = np.mod(np.asarray(h, dtype=np.float64), 1.0)
    s = np.broadcast_to(np.asarray(s, dtype=np.float64), h.shape)
    v = np.broadcast_to(np.asarray(v, dtype=np.float64), h.shape)
    k = np.mod(np.array([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0, 6.0)
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def png_bytes(pixels: np.ndarray) -> bytes:
    """One size x size x 3 uint8 picture as PNG bytes (no timestamps: the same pixels
    give the same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def demo_images(items: pd.DataFrame, genres: list[str], seed: int) -> Iterator[tuple[str, bytes]]:
    """(relative path, PNG bytes) of each item's picture, in the catalogue's order, drawn
    a batch of ``CHUNK`` items at a time (batch b from the stream ``(seed, 3, b)``)."""
    primary, second = genre_indices(items, genres)
    paths = items["image"].tolist()
    for b, start in enumerate(range(0, len(items), CHUNK)):
        stop = start + CHUNK
        rng = np.random.default_rng((seed, 3, b))
        pixels = render_images(primary[start:stop], second[start:stop], len(genres), rng)
        for path, picture in zip(paths[start:stop], pixels, strict=True):
            yield path, png_bytes(picture)


def write_demo_images(
    items: pd.DataFrame, folder: Path, genres: list[str], seed: int
) -> pd.DataFrame:
    """Write each item's picture to its ``image`` path under ``folder`` (through a
    temporary file and a rename, so no reader sees half a file) and return ``items`` (a
    copy) with those paths made absolute."""
    from tasks.storage.shared_files import replace_atomically

    base = Path(folder).resolve()
    (base / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for path, data in demo_images(items, genres, seed):
        replace_atomically(base / path, functools.partial(Path.write_bytes, data=data))
    out = items.copy()
    out["image"] = pd.array([str(base / p) for p in items["image"]], dtype="str")
    return out
