"""Training in the nightly: every model from its config section, progress per epoch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from tasks.config import TrainConfig
from tasks.data.model_inputs import FitInputs
from tasks.train import model_params, train_model


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def progress() -> Collect:
    logger = logging.getLogger("recpipe.progress")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((20, 12)) < 0.3).astype(np.float32))


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_implicit_models_train_from_their_config_and_report_iterations(
    name: str, progress: Collect
) -> None:
    config = TrainConfig.model_validate({"models": [name], name: {"iterations": 3, "factors": 4}})
    assert model_params(name, config)["iterations"] == 3
    model, seconds = train_model(name, config, FitInputs(_matrix(), None, None, None))
    assert model.is_fitted and seconds >= 0
    epochs = [(r.model, r.epoch, r.epochs) for r in progress.records if r.event == "epoch"]
    assert epochs == [(name, e, 3) for e in range(4)]


def test_hybrid_trains_from_its_config_section() -> None:
    config = TrainConfig.model_validate(
        {
            "models": ["ease_mult_dae"],
            "ease_mult_dae": {
                "ease": {"l2": 10.0},
                "mult_dae": {"hidden_dim": 8, "epochs": 2, "batch_size": 8},
                "default_weight": 0.25,
            },
        }
    )
    model, _ = train_model("ease_mult_dae", config, FitInputs(_matrix(), None, None, None))
    assert model.weight_ == 0.25 and model.dae_.params["hidden_dim"] == 8
