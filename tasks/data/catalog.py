"""The item catalogue as scoring sees it, aligned with a model's item vocabulary.

Built from the optional items table (``item_id`` plus any of ``title``,
``genres`` as "A|B", ``available``) and the deny list: which items may be
recommended, their primary genre (for the per-genre cap), their genre vectors
(for content-based cold start) and their titles (for explanations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.vocab import IdVocabulary
from tasks.errors import DataError


@dataclass(frozen=True)
class Catalog:
    item_ids: np.ndarray  # raw ids, index = the model's item index
    blocked: np.ndarray  # bool: denied or unavailable, never recommended
    genre: np.ndarray  # int code of the primary genre, -1 unknown
    genre_vectors: np.ndarray | None  # items x genres, L2-normalised rows; None without genres
    titles: dict[str, str]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def read_deny_list(path: Path | None, items: list[str]) -> set[str]:
    """Deny list from config items plus a file of one item id per line (# comments allowed)."""
    denied = {str(i).strip() for i in items if str(i).strip()}
    if path is not None:
        if not Path(path).is_file():
            raise DataError(
                f"deny list {path} not found; expected a text file with one item id per line; "
                "fix score.deny_list_path"
            )
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                denied.add(line)
    return denied


def build_catalog(
    items: IdVocabulary,
    frame: pd.DataFrame | None,
    denied: set[str],
    respect_available: bool = True,
) -> Catalog:
    """Align the items table with ``items``; items missing from the table are allowed."""
    ids = items.ids.astype(str)
    blocked = np.isin(ids, list(denied)) if denied else np.zeros(len(ids), dtype=bool)
    genre = np.full(len(ids), -1, dtype=np.int64)
    vectors, titles = None, {}
    if frame is not None and len(frame):
        table = (
            frame.assign(item_id=frame["item_id"].astype(str))
            .drop_duplicates("item_id")
            .set_index("item_id")
        )
        aligned = table.reindex(ids)
        if respect_available and "available" in aligned:
            available = aligned["available"].astype("boolean").fillna(True).to_numpy(dtype=bool)
            blocked |= ~available
        if "title" in aligned:
            known = aligned["title"].notna().to_numpy()
            titles = dict(zip(ids[known], aligned["title"][known].astype(str), strict=False))
        if "genres" in aligned:
            genre_lists = aligned["genres"].fillna("").astype(str).str.split("|")
            names = sorted({g for gs in genre_lists for g in gs if g})
            code = {g: n for n, g in enumerate(names)}
            genre = np.array([code.get(gs[0], -1) if gs and gs[0] else -1 for gs in genre_lists])
            if names:
                vectors = np.zeros((len(ids), len(names)), dtype=np.float32)
                for row, gs in enumerate(genre_lists):
                    for g in gs:
                        if g in code:
                            vectors[row, code[g]] = 1.0
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return Catalog(ids, blocked, genre, vectors, titles)


def cap_per_genre(
    candidates: np.ndarray, scores: np.ndarray, genre: np.ndarray, k: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Take, per row, the best candidates with at most ``cap`` of each primary genre.

    Items of unknown genre are not capped. When the cap leaves fewer than k items,
    the best remaining candidates fill the list, so every user still gets k rows.
    """
    n = candidates.shape[0]
    out_items = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    for row in range(n):
        chosen: list[int] = []
        counts: dict[int, int] = {}
        spill: list[int] = []
        for pos, item in enumerate(candidates[row]):
            if item < 0:
                break
            g = int(genre[item])
            if g >= 0 and counts.get(g, 0) >= cap:
                spill.append(pos)
                continue
            counts[g] = counts.get(g, 0) + 1
            chosen.append(pos)
            if len(chosen) == k:
                break
        chosen = sorted(chosen + spill[: k - len(chosen)])
        out_items[row, : len(chosen)] = candidates[row, chosen]
        out_scores[row, : len(chosen)] = scores[row, chosen]
    return out_items, out_scores
