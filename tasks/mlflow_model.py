"""The MLflow pyfunc flavour of a recpipe model bundle.

Input: a DataFrame with a ``user_id`` column of raw ids. Output: one row per
(user, rank) with ``user_id, rank, item_id, score``; ``params={"k": 10}`` sets K.
The bundle carries its own id vocabularies and the training history used to
exclude seen items; unknown users get no rows.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from models.vocab import load_bundle

        self.model, self.users, self.items = load_bundle(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        raw = model_input["user_id"].astype(str)
        idx = self.users.index(raw)
        known = idx >= 0
        users = idx[known]
        items, scores = self.model.recommend(users, k) if users.size else (
            np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        )
        valid = items >= 0
        rows, ranks = np.nonzero(valid)
        return pd.DataFrame(
            {
                "user_id": raw[known].to_numpy()[rows],
                "rank": (ranks + 1).astype(np.int64),
                "item_id": self.items.raw(items[valid]).astype(str),
                "score": scores[valid].astype(np.float64),
            }
        )


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_id")]),
        outputs=Schema(
            [
                ColSpec("string", "user_id"),
                ColSpec("long", "rank"),
                ColSpec("string", "item_id"),
                ColSpec("double", "score"),
            ]
        ),
        params=ParamSchema([ParamSpec("k", "long", 10)]),
    )
