"""The item-item similarity of validated data, kept in the workspace by content."""

from __future__ import annotations

from pathlib import Path

import scipy.sparse as sp

from models.vocab import IdVocabulary
from tasks.config import ScoreConfig


class SimilarityCache:
    """The item-item similarity of one validated table, kept by content: a re-run of a
    night (or another night) on byte-identical validated data and the same champion items
    reads it instead of summing co-occurrences again. Keyed by the sha256 of the validated
    file, the item vocabulary and the similarity settings; the newest few are kept."""

    KEEP = 3

    def __init__(self, folder: Path, validated_path: str, items: IdVocabulary) -> None:
        self.folder = Path(folder)
        self._data = (validated_path, items)
        self._digest: str | None = None

    def _file(self, config: ScoreConfig) -> Path:
        import hashlib

        from tasks.storage.cache import file_digest

        if self._digest is None:
            validated_path, items = self._data
            digest = hashlib.sha256(file_digest(validated_path).encode())
            digest.update(items.to_json().encode())
            self._digest = digest.hexdigest()
        settings = f"{self._digest}-{config.neighbours}-{config.shrinkage}"
        return self.folder / f"{hashlib.sha256(settings.encode()).hexdigest()[:32]}.npz"

    def get(self, config: ScoreConfig) -> sp.csr_matrix | None:
        path = self._file(config)
        try:
            similarity = sp.load_npz(path).tocsr()
        except (OSError, ValueError, KeyError):  # absent, or damaged: computed again
            return None
        path.touch()  # the newest used are the ones kept
        return similarity

    def put(self, config: ScoreConfig, similarity: sp.csr_matrix) -> sp.csr_matrix:
        from tasks.storage.shared_files import replace_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        replace_atomically(self._file(config), lambda tmp: _save_npz(tmp, similarity))
        cached = sorted(self.folder.glob("*.npz"), key=lambda f: f.stat().st_mtime_ns)
        for old in cached[: -self.KEEP]:
            old.unlink(missing_ok=True)
        return similarity


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    with open(path, "wb") as handle:  # a file object: save_npz would add ".npz" to a name
        sp.save_npz(handle, matrix, compressed=False)
