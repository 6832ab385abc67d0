"""The two-tower family's losses: BPR, and the in-batch sampled softmax's logits."""

from __future__ import annotations

from typing import Any


def bpr_loss(y_true: Any, score_diff: Any) -> Any:
    """BPR: -log sigmoid(s(u, pos) - s(u, neg)) per example."""
    from keras import ops

    return ops.softplus(-score_diff)


def _in_batch_logits(temperature: float) -> Any:
    """Layer: (users, items, item ids, log q) -> B x B logits, same-item collisions masked."""
    import keras
    from keras import ops

    class InBatchLogits(keras.layers.Layer):
        def call(self, inputs: list[Any]) -> Any:
            users, items, ids, log_q = inputs
            logits = ops.matmul(users, ops.transpose(items)) / temperature
            logits = logits - ops.expand_dims(log_q, 0)
            same = ops.equal(ops.expand_dims(ids, 1), ops.expand_dims(ids, 0))
            collision = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(ids)[0]) > 0))
            return ops.where(collision, -1e9, logits)

    return InBatchLogits(name="in_batch_logits")
