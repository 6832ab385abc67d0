"""Candidate retrieval for factor models through an approximate nearest-neighbour index.

A factor model scores ``user_vector . item_vector``. Over a wide catalog that dense
block of len(users) x n_items scores is the cost of scoring; above ``ann_min_items``
items (a setting of ALS, BPR and the two-tower; 0 = never) the model keeps an HNSW
graph of its item vectors (hnswlib, inner-product space: the vectors are not normalised,
so the graph searches maximum inner product directly) and ranks only the top-n
candidates it retrieves for each user, scored exactly. Below the width, and for every
model without an index, scoring stays dense and exact.

n is chosen so exclusions can never leave fewer than k items: k (4 x k with the genre
cap), plus the items the user must have excluded (their history and the blocked items),
plus ``CANDIDATE_MARGIN``, rounded up to a power of two so users of similar needs are
searched together. A width that is a large share of the catalog (a user who has seen
nearly everything, a tiny catalog) is served exactly from the dense product instead.

The graph is built on one thread with the model's seed, so the same vectors give the
same graph and the same recommendations (763,385 ALS item vectors: 156 s); it is saved
beside the model's other files.

Why hnswlib (measured, 2 cores shared with other work, load average 4-7, ``nice -n 10``):
ALS (32 factors, implicit, default settings) fitted on ``recpipe generate data
--interactions 10M --items 1M --users 500000`` (500,000 users x 763,385 items seen; fit
264 s); 10,000 random users, seen items excluded alike; candidates per user k + history
+ 16 rounded up to a power of two, re-scored exactly; recall@10 against the exact
inner-product top-10 (the dense product and top-k took 73.8 s for the 10,000 users).
Every graph: M = 16, ef_construction = 64, ef_search = the candidate width, built on 2
threads; query: seconds for the 10,000 users (search, exact re-scoring, exclusion), the
range of three interleaved rounds in one process, on 2 threads and on 1.

=============================  =======  ========  =========  ==========  ==========
library, index                 build s  size MiB  recall@10  query 2 th  query 1 th
=============================  =======  ========  =========  ==========  ==========
hnswlib 0.8 HNSW, IP           79.2     201       0.9937     0.63-0.80   0.56-0.60
faiss-cpu 1.15 HNSWFlat, IP    53.4     198       0.9794     0.77-0.95   0.72-0.87
usearch 2.26 HNSW, IP          101.7    201       0.9939     1.15-1.94   0.94-1.51
faiss-cpu IVFFlat, IP, 4,096   333.3    166       0.4340     10.05       -
=============================  =======  ========  =========  ==========  ==========

(IVF-Flat at nprobe 128, its best: its coarse inner-product assignment fails on item
norms spread over five decades. With ef_construction 200 hnswlib took 308 s to build for
the same recall.) hnswlib has the lowest query time at recall >= 0.95 and the best recall
with usearch; faiss builds faster. hnswlib ships a source distribution only: installing it
compiles a small C++ extension once (a C++ compiler is needed).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from models.memory import FLOAT32, INDEX, SCORE_USERS

#: default ``ann_min_items``: catalogs at least this wide are ranked through the index.
#: Exact ranking (product, exclusion, top-k) cost about 10 ns per user-item here
#: (10,000 users x 763,385 items: 73.8 s), so 500,000 users x 100,000 items take ~8 min
#: per model, against ~20 s to build the graph and ~0.15 ms a user to search it. Below
#: this width exact ranking is affordable and is kept.
ANN_MIN_ITEMS = 100_000
#: the setting's type: 0 = never an index
AnnMinItems = Annotated[int, Field(ge=0)]
#: candidates retrieved beyond k plus the items a user must have excluded
CANDIDATE_MARGIN = 16
#: HNSW graph degree and construction breadth (see the table above)
GRAPH_DEGREE = 16
EF_CONSTRUCTION = 64
#: a width of at least 1 / EXACT_SHARE of the catalog is served from the dense product
EXACT_SHARE = 4
#: candidate width per user assumed by memory estimates (4 x k + history + margin)
ESTIMATE_WIDTH = 512
INDEX_FILE = "item_index.hnsw"


def uses_index(n_items: int, ann_min_items: int) -> bool:
    """The rule: an index when ``ann_min_items`` > 0 and the catalog has at least that
    many items."""
    return ann_min_items > 0 and n_items >= ann_min_items


def index_bytes(items: int, dim: int) -> int:
    """hnswlib's graph over ``items`` vectors of ``dim`` floats: each element's vector,
    its 2M level-0 links, label and count, about M links more on upper levels and
    ~100 bytes of locks and label map (measured: 763,385 x 32 floats, 282 MiB resident)."""
    return items * (FLOAT32 * dim + 3 * GRAPH_DEGREE * INDEX + 100)


def candidate_bytes(dim: int, width: int = ESTIMATE_WIDTH) -> int:
    """A block of ``SCORE_USERS`` users' candidates: ids, distances, exact scores and the
    gathered item vectors they are scored from."""
    return SCORE_USERS * width * (8 + 2 * FLOAT32 + FLOAT32 * dim)


class ItemIndex:
    """An HNSW graph (inner product) over item vectors, and the vectors for exact scores.

    ``vectors`` (n_items x dim float32) are the items' side of the model's scores: a
    model's score of item i for a user is ``query . vectors[i]``."""

    def __init__(self, graph: Any, vectors: np.ndarray) -> None:
        self.graph = graph
        self.vectors = vectors
        self._lock = threading.Lock()  # ef is the graph's state, set per search

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def build(cls, vectors: np.ndarray, seed: int) -> ItemIndex:
        """The graph of ``vectors``, built on one thread (the same vectors and seed give
        the same graph)."""
        import hnswlib

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        graph = hnswlib.Index(space="ip", dim=vectors.shape[1])
        graph.init_index(
            max_elements=len(vectors),
            M=GRAPH_DEGREE,
            ef_construction=EF_CONSTRUCTION,
            random_seed=seed,
        )
        graph.add_items(vectors, np.arange(len(vectors)), num_threads=1)
        return cls(graph, vectors)

    def save(self, directory: Path) -> None:
        self.graph.save_index(str(directory / INDEX_FILE))

    @classmethod
    def load(cls, directory: Path, vectors: np.ndarray) -> ItemIndex | None:
        """The saved graph of ``vectors``, or None when ``directory`` holds none."""
        import hnswlib

        path = directory / INDEX_FILE
        if not path.is_file():
            return None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        graph = hnswlib.Index(space="ip", dim=vectors.shape[1])
        graph.load_index(str(path), max_elements=len(vectors))
        if graph.get_current_count() != len(vectors):
            raise ValueError(
                f"{path}: the graph holds {graph.get_current_count()} items, the model "
                f"{len(vectors)}; delete the file and load again to rebuild it"
            )
        return cls(graph, vectors)

    def search(
        self, queries: np.ndarray, widths: np.ndarray, threads: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``widths[r]`` items of each query row by inner product (approximate),
        with their exact scores: ``(items, scores)``, best first, as wide as the widest
        row rounded up to a power of two; shorter rows are padded with -1 and -inf."""
        n_items = self.n_items
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        need = np.minimum(np.maximum(np.asarray(widths, dtype=np.int64), 1), n_items)
        rounded = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), n_items)
        out_width = int(rounded.max()) if rounded.size else 1
        items = np.full((len(queries), out_width), -1, dtype=np.int64)
        scores = np.full((len(queries), out_width), -np.inf, dtype=np.float32)
        for width in np.unique(rounded):
            rows = np.flatnonzero(rounded == width)
            found, exact = self._group(queries[rows], int(width), threads)
            items[rows, : found.shape[1]] = found
            scores[rows, : found.shape[1]] = exact
        return items, scores

    def _group(
        self, queries: np.ndarray, width: int, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One width's rows: from the graph, or from the dense product when the width is
        a large share of the catalog (or the graph cannot find that many)."""
        if width * EXACT_SHARE < self.n_items:
            try:
                with self._lock:
                    self.graph.set_ef(width)
                    labels, _ = self.graph.knn_query(queries, k=width, num_threads=threads)
            except RuntimeError:  # fewer than ``width`` reachable: exact below
                pass
            else:
                found = labels.astype(np.int64)
                exact = np.einsum("rd,rwd->rw", queries, self.vectors[found])
                order = np.argsort(-exact, axis=1, kind="stable")
                return np.take_along_axis(found, order, 1), np.take_along_axis(exact, order, 1)
        from models.ranking import top_k

        return top_k(queries @ self.vectors.T, width, overwrite=True)


class IndexedScoring:
    """What a factor model adds to score through an :class:`ItemIndex` above its width.

    The model supplies its two sides of the score, ``index_vectors()`` (n_items x d)
    and ``query_vectors(users, history)`` (len(users) x d), whose products are exactly
    its dense scores; it calls ``_index_items()`` at the end of fitting,
    ``_save_index`` / ``_load_index`` with its other files. ``item_index_`` stays None
    below ``ann_min_items``, and then nothing about scoring changes."""

    item_index_: ItemIndex | None = None
    params: dict[str, Any]
    train_matrix_: Any

    @property
    def dense_scores(self) -> bool:
        """Ranked over retrieved candidates when the model has an index."""
        return getattr(self, "item_index_", None) is None

    def index_vectors(self) -> np.ndarray:
        """The items' side of the scores, n_items x d float32."""
        raise NotImplementedError

    def query_vectors(self, users: np.ndarray, history: Any) -> np.ndarray:
        """The users' side, len(users) x d; ``history`` holds those users' rows."""
        raise NotImplementedError

    def _query_threads(self) -> int:
        """Threads of a search (-1: every core); they do not change the results."""
        return -1

    def _wide(self) -> bool:
        return uses_index(int(self.train_matrix_.shape[1]), self.params["ann_min_items"])

    def _index_items(self) -> None:
        """Build the graph when the catalog is at least ``ann_min_items`` wide."""
        self.item_index_ = (
            ItemIndex.build(self.index_vectors(), self.params["seed"]) if self._wide() else None
        )

    def _save_index(self, directory: Path) -> None:
        if self.item_index_ is not None:
            self.item_index_.save(directory)

    def _load_index(self, directory: Path) -> None:
        """The saved graph, or one built now (a model saved without it)."""
        if not self._wide():
            self.item_index_ = None
            return
        vectors = self.index_vectors()
        self.item_index_ = ItemIndex.load(directory, vectors) or ItemIndex.build(
            vectors, self.params["seed"]
        )

    def _retrieve(
        self, users: np.ndarray, history: Any, widths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates and exact scores from the graph (see :meth:`ItemIndex.search`)."""
        if self.item_index_ is None:
            raise RuntimeError("no item index below ann_min_items: score this model densely")
        queries = self.query_vectors(users, history)
        return self.item_index_.search(queries, widths, self._query_threads())
