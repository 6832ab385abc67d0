"""MLflow "model from code" for a recpipe model bundle.

MLflow copies this file into every logged model and runs it at load time, with
the ``models`` package shipped beside it (``code_paths``), so
``mlflow.pyfunc.load_model("models:/NAME@champion")`` recommends in a fresh
process that has no recpipe workspace or installation.

Input: a DataFrame with a ``user_id`` column of raw ids. Output: one row per
(user, rank) with ``user_id, rank, item_id, score``; ``params={"k": 10}`` sets K.
The bundle carries its own id vocabularies and training history (used to
exclude seen items); users it does not know get no rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class RecommenderPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from models.vocab import load_bundle

        self.model, self.users, self.items = load_bundle(context.artifacts["bundle"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k", 10))
        raw = model_input["user_id"].astype(str).reset_index(drop=True)
        idx = self.users.index(raw)
        known = idx >= 0
        if known.any():
            items, scores = self.model.recommend(idx[known], k)
        else:
            items = np.empty((0, k), dtype=np.int64)
            scores = np.empty((0, k), dtype=np.float32)
        valid = items >= 0
        rows, ranks = np.nonzero(valid)
        return pd.DataFrame(
            {
                "user_id": raw[known].to_numpy()[rows].astype(str),
                "rank": (ranks + 1).astype(np.int64),
                "item_id": self.items.raw(items[valid]).astype(str),
                "score": scores[valid].astype(np.float64),
            }
        )


set_model(RecommenderPyfunc())
