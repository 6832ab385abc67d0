"""What a model costs in memory, estimated before it trains.

Every model answers :meth:`models.base.BaseRecommender.memory_estimate` from the shape
of the night's data (users, items, interactions) and its settings, without allocating
anything, so the night can plan: a model that would not fit the memory budget switches
to its scalable form (:meth:`~models.base.BaseRecommender.scalable_params`) or is left
out, before anything trains. Estimates count the arrays the model itself allocates at
its peak (training and scoring, scoring for a block of ``score_users`` users); they are
upper bounds of the model's own arrays, not of the process.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT32 = 4
FLOAT64 = 8
INDEX = 4  # int32 indices of a CSR matrix
POINTER = 8  # int64 row pointers


@dataclass(frozen=True)
class DataShape:
    """The size of a night's training data."""

    users: int
    items: int
    interactions: int
    #: edges of the users x users relations (the social input); None: not known, and
    #: a social model then counts as many edges as interactions
    relations: int | None = None

    def csr_bytes(self, value_bytes: int = FLOAT32) -> int:
        """A users x items CSR matrix of the interactions."""
        return self.interactions * (value_bytes + INDEX) + (self.users + 1) * POINTER

    @property
    def relation_edges(self) -> int:
        """The stored edges of the relations, or the interactions when not known."""
        return self.interactions if self.relations is None else self.relations

    def relations_csr_bytes(self) -> int:
        """A users x users float32 CSR matrix of the relations."""
        return self.relation_edges * (FLOAT32 + INDEX) + (self.users + 1) * POINTER

    @property
    def mean_items_per_user(self) -> float:
        return self.interactions / max(self.users, 1)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a model's own arrays while it trains and while it scores, and what
    dominates them (for the line the user reads)."""

    train_bytes: int
    score_bytes: int
    dominant: str

    @property
    def peak_bytes(self) -> int:
        return max(self.train_bytes, self.score_bytes)


def gib(n_bytes: float) -> str:
    """``n_bytes`` for people: ``"24.3 GiB"``, ``"512 MiB"``."""
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):.1f} GiB"
    return f"{n_bytes / (1 << 20):.0f} MiB"


def cooccurring_pairs(shape: DataShape) -> int:
    """An upper bound of the distinct item pairs that co-occur in some user's history:
    each user contributes at most (their items)^2 pairs, and there are at most items^2.
    With ``d`` the mean items per user, ``users * d^2`` (exact when every user has ``d``
    items; a long tail of heavy users makes the true sum larger, which is why callers
    keep a margin), capped at ``items^2``."""
    d = shape.mean_items_per_user
    return int(min(shape.users * d * d, float(shape.items) ** 2))


#: users in one scoring block: the night scores ``score.batch_users`` (default 1024) users
#: per call of ``score``, fewer on a wide catalog (:func:`block_rows`); every
#: ``score_bytes`` is for one such block (:func:`score_users`)
SCORE_USERS = 1024
#: bytes of one block of dense float32 scores: a wide catalog scores fewer users at once
SCORE_BLOCK_BYTES = 256 << 20


def block_rows(rows: int, n_items: int) -> int:
    """``rows``, or fewer where a block of float32 scores over ``n_items`` items would pass
    ``SCORE_BLOCK_BYTES`` (1,000,000 items: 67 rows at once)."""
    return max(1, min(rows, SCORE_BLOCK_BYTES // (FLOAT32 * max(n_items, 1))))


def score_users(items: int) -> int:
    """Users in one scoring block of the night over ``items`` items."""
    return block_rows(SCORE_USERS, items)


def dense_bytes(rows: int, cols: int, value_bytes: int = FLOAT32) -> int:
    """A dense ``rows x cols`` array."""
    return int(rows) * int(cols) * value_bytes


def summed(model: str, train: dict[str, int], score: dict[str, int]) -> MemoryEstimate:
    """An estimate from its parts: ``train`` and ``score`` map a phrase naming each array
    (with its formula) to its bytes; the parts are added (an upper bound: they are not
    all alive at once) and ``dominant`` names the largest part of the larger total."""
    train_bytes, score_bytes = sum(train.values()), sum(score.values())
    parts = train if train_bytes >= score_bytes else score
    label = max(parts, key=lambda key: parts[key])
    phase = "training" if parts is train else "scoring"
    return MemoryEstimate(
        train_bytes=int(train_bytes),
        score_bytes=int(score_bytes),
        dominant=f"{model} ({phase}): {label}",
    )
