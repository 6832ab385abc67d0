"""MLflow "model from code" for a recpipe model bundle.

MLflow copies this file into every logged model and runs it at load time, with the
``models`` and ``tasks`` packages shipped beside it (``code_paths``), so
``mlflow.pyfunc.load_model("models:/NAME@champion")`` recommends in a fresh process
without a recpipe workspace.

It answers with the published table's rows. Input: a DataFrame with a ``user_id`` column
of raw ids and, optionally, the users' events (``item_id``, ``timestamp``, ``value``; one
row per event). A user given without events is answered from the history the table was
published with: the publishing context the nightly and the refreshes record on the
version's run (tasks/tracking/serving.py), read through the tracking server the model
was loaded from (``MLFLOW_TRACKING_URI``), so the rows are the table's rows for that user
and version, rules, reasons and fallbacks included; the ``history`` column says which
publish. A user given with events is ranked from them with the newest publish's rules
(``history`` = ``request``). Output: ``tasks.scoring.serving.ANSWER_COLUMNS``;
``params={"k": N}`` asks for another list length (0: the published one).

A version never published from, or a copy loaded without its tracking server, has no
context: it ranks by the model alone (seen items excluded, no business rules) with
``strategy`` ``model`` and says so in ``history``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

MODEL_ONLY = "none: no publishing context for this version (the model alone, no rules)"


class RecommenderPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        from models.vocab import load_bundle

        bundle = Path(context.artifacts["bundle"])
        self.model, self.users, self.items = load_bundle(str(bundle))
        self.run_id = _run_id(bundle)
        self._layers: dict[str, tuple[tuple, Path]] = {}  # path -> (files, local copy)
        self._folder: Path | None = None
        self._served: tuple[tuple, Any] | None = None

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k") or 0) or None
        served = self.serving_context()
        if served is None:
            return self._model_only(model_input, k or 10)
        return served.answer(self.model, self.users, self.items, model_input, k)

    def serving_context(self) -> Any:
        """The publishing context of this version as the tracking server holds it now;
        None without one. A layer is downloaded again when its files changed (a forgotten
        user's rows removed), else read once."""
        from tasks.scoring.serving import ServingContext

        layers = self._sync_layers()
        if not layers:
            return None
        key = tuple(layers)
        if self._served is None or self._served[0] != key:
            folders = [self._layers[path][1] for path, _ in layers]
            self._served = (key, ServingContext.read(folders))
        return self._served[1]

    def _sync_layers(self) -> list[tuple[str, tuple]]:
        """``(artifact path, files and sizes)`` of every complete layer, night first; the
        new or changed ones downloaded."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from tasks.scoring.serving import CONTEXT_FILE, REFRESH_FOLDER, SERVING_TAG

        run_id = self.run_id
        if run_id is None:
            return []
        try:
            client = MlflowClient()
            night = client.get_run(run_id).data.tags.get(SERVING_TAG)
        except MlflowException:  # not on this tracking server: the model alone
            return []
        if not night:
            return []

        def files(path: str) -> tuple:
            listed = client.list_artifacts(run_id, path)
            return tuple(sorted((a.path, a.file_size) for a in listed if not a.is_dir))

        refreshes = client.list_artifacts(run_id, f"{night}/{REFRESH_FOLDER}")
        layers = [(night, files(night))]
        layers += [(a.path, files(a.path)) for a in sorted(refreshes, key=lambda a: a.path)]
        layers = [
            (path, sig) for path, sig in layers if any(f.endswith(CONTEXT_FILE) for f, _ in sig)
        ]
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="recpipe-serving-"))
        for path, signature in layers:
            if self._layers.get(path, (None,))[0] != signature:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path=path,
                    dst_path=tempfile.mkdtemp(dir=self._folder),
                )
                self._layers[path] = (signature, Path(local))
        return layers

    def _model_only(self, model_input: pd.DataFrame, k: int) -> pd.DataFrame:
        """Top-k by the model over its training history, for the users it knows."""
        raw = pd.Series(model_input["user_id"].astype(str).unique())
        idx = self.users.index(raw)
        known = idx >= 0
        if known.any():
            items, scores = self.model.recommend(idx[known], k)
        else:
            items = np.empty((0, k), dtype=np.int64)
            scores = np.empty((0, k), dtype=np.float32)
        valid = items >= 0
        rows, ranks = np.nonzero(valid)
        n = int(valid.sum())
        return pd.DataFrame(
            {
                "user_id": raw[known].to_numpy()[rows].astype(str),
                "rank": (ranks + 1).astype(np.int64),
                "item_id": self.items.raw(items[valid]).astype(str),
                "score": scores[valid].astype(np.float64),
                "strategy": ["model"] * n,
                "reason": [None] * n,
                "model_name": [self.model.name] * n,
                "model_version": [None] * n,
                "run_id": [self.run_id] * n,
                "run_date": [None] * n,
                "history": [MODEL_ONLY] * n,
            }
        )


def _run_id(bundle: Path) -> str | None:
    """The MLflow run this model was logged on (its MLmodel file, beside ``artifacts/``)."""
    import yaml

    spec = bundle.parent.parent / "MLmodel"
    if not spec.is_file():
        return None
    return yaml.safe_load(spec.read_text()).get("run_id")


set_model(RecommenderPyfunc())
