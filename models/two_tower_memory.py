"""The two-tower family's memory estimate (models/two_tower.py, models/content_tower.py):
what a fit and a scoring pass hold, from the data's shape, the settings and the content."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from models.ann import ESTIMATE_WIDTH, candidate_bytes, index_bytes, uses_index
from models.content_encoders import ContentShape
from models.keras_base import SCORE_COPIES, dense_params, keras_memory
from models.memory import (
    FLOAT32,
    INDEX,
    DataShape,
    MemoryEstimate,
    dense_bytes,
    score_users,
)


def tower_memory(
    name: str,
    uses_ids: bool,
    activation_copies: int,
    shape: DataShape,
    p: dict[str, Any],
    content: ContentShape | None,
) -> MemoryEstimate:
    """The estimate of a two-tower model ``name`` (its item tower reads id embeddings when
    ``uses_ids``) with settings ``p`` (every field, as ``model_dump`` gives them) and typed
    ``content`` (None: none); see ``TwoTower.memory_estimate``."""
    items, dim, hidden = shape.items, p["embedding_dim"], list(p["hidden_dims"])

    def mlp(n_in: int) -> int:
        sizes = [n_in, *hidden, dim]
        return sum(dense_params(a, b) for a, b in pairwise(sizes))

    ids = items * dim if uses_ids else 0
    tower_in = (dim if uses_ids else 0) + (p["content_dim"] if content else 0)
    n_params = dense_params(items, dim) + mlp(dim) + ids + mlp(tower_in)
    item_vectors = items * (2 * dim + sum(hidden)) * FLOAT32 * 2
    data = {
        "binary CSR copies of the training matrix, 2 x CSR": 2 * shape.csr_bytes(),
        "training pairs and their COO, 24 x interactions": (
            shape.interactions * (3 * INDEX + 8 + INDEX)
        ),
        "item tower outputs over every item, 8 x items x (2 dim + hidden)": item_vectors,
    }
    content_score: dict[str, int] = {}
    if content:
        n_params += content.encoder_params(p["content_dim"])
        towers = 2 if p["loss"] == "bpr" else 1  # BPR encodes the negatives too
        kept = items * content.row_bytes()
        data["content rows kept, items x bytes per item"] = kept
        data["content encoder activations of a batch and their gradients"] = (
            towers * content.batch_activation_bytes(p["batch_size"], p["content_dim"])
        )
        content_score = {
            "content rows kept, items x bytes per item": kept,
            "content encoder activations of a block of items": (
                content.batch_activation_bytes(p["score_batch_size"], p["content_dim"]) // 2
            ),
        }
    estimate = keras_memory(
        name,
        shape,
        p,
        n_params,
        batch_cells=p["batch_size"] * items,
        activation_copies=activation_copies,
        data=data,
    )
    if content_score:
        score_bytes = estimate.score_bytes + sum(content_score.values())
        dominant = estimate.dominant
        if score_bytes > estimate.train_bytes:
            part = max(content_score, key=lambda key: content_score[key])
            dominant = f"{name} (scoring): {part}"
        estimate = MemoryEstimate(estimate.train_bytes, score_bytes, dominant)
    if not uses_index(items, p["ann_min_items"]):
        return estimate
    graph = index_bytes(items, dim)
    step = min(score_users(items), p["score_batch_size"])
    score = {
        **content_score,
        "weights, 4 x parameters": n_params * FLOAT32,
        "network outputs of a block, 3 x 4 x score_batch_size x items": SCORE_COPIES
        * dense_bytes(step, items),
        f"HNSW graph of the item vectors, {graph // items} x items": graph,
        "indexed item vectors, 4 x items x dim": items * dim * FLOAT32,
        f"a block's candidates and their vectors, block users x {ESTIMATE_WIDTH} x "
        f"(16 + 4 x {dim})": candidate_bytes(dim),
    }
    score_bytes = sum(score.values())
    if score_bytes > estimate.train_bytes:
        dominant = f"{name} (scoring): {max(score, key=lambda key: score[key])}"
    elif estimate.dominant.startswith(f"{name} (training)"):
        dominant = estimate.dominant
    else:
        dominant = f"{name} (training): weights, optimizer state and training batches"
    return MemoryEstimate(estimate.train_bytes, score_bytes, dominant)
