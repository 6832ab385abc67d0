"""The night's memory plan on a wide catalog with known estimates: the switch to sparse
EASE, the skip of a model that cannot fit, and the lines the user reads."""

from __future__ import annotations

from models.ease import EASE
from models.memory import DataShape
from models.mult_dae import MultDAE
from models.popularity import Popularity
from tasks.config import TrainConfig
from tasks.planning.memory import memory_budget, plan_models

WIDE = DataShape(users=50_000, items=60_000, interactions=1_000_000)


def test_everything_fits_a_large_budget_and_nothing_changes() -> None:
    config = TrainConfig(ease={"form": "dense"})
    plan = plan_models(config, WIDE, 1 << 50, "a test budget")
    assert [m.action for m in plan.models] == ["train", "train", "train"]
    assert plan.config == config
    assert plan.lines == []


def test_ease_over_the_budget_takes_its_sparse_form() -> None:
    config = TrainConfig(models=["popularity", "ease"], ease={"form": "dense", "l2": 300.0})
    dense = EASE.memory_estimate(WIDE, form="dense")
    sparse = EASE.memory_estimate(WIDE, form="sparse")
    budget = sparse.peak_bytes + 1
    assert budget < dense.peak_bytes
    plan = plan_models(config, WIDE, budget, "train.memory_budget = 1.1 GiB")
    assert [(m.name, m.action) for m in plan.models] == [
        ("popularity", "train"),
        ("ease", "scalable"),
    ]
    assert plan.config.models == ["popularity", "ease"]
    assert plan.config.ease.form == "sparse" and plan.config.ease.l2 == 300.0
    (line,) = plan.lines
    assert line.startswith("ease: takes its scalable form (form = 'sparse'): as configured")
    assert "train.memory_budget = 1.1 GiB" in line
    assert "12 x items^2" in line  # what dominates the dense form


def test_a_model_that_cannot_fit_is_left_out_with_the_line_to_act_on() -> None:
    config = TrainConfig(models=["popularity", "ease", "mult_dae"])
    budget = Popularity.memory_estimate(WIDE).peak_bytes + 1
    assert MultDAE.memory_estimate(WIDE).peak_bytes > budget
    plan = plan_models(config, WIDE, budget, "train.memory_budget = 1 MiB")
    assert [(m.name, m.action) for m in plan.models] == [
        ("popularity", "train"),
        ("ease", "skip"),
        ("mult_dae", "skip"),
    ]
    assert plan.config.models == ["popularity"]
    skip = plan.lines[-1]
    assert skip.startswith("mult_dae: left out of this night: it needs about ")
    for part in (
        "train.memory_budget = 1 MiB",
        "60,000 items",
        "remove mult_dae from train.models",
    ):
        assert part in skip
    assert plan.summary()["models"]["mult_dae"]["action"] == "skip"


def test_the_budget_is_the_setting_or_a_share_of_available_memory() -> None:
    assert memory_budget(TrainConfig(memory_budget="2GiB"))[0] == 2 << 30
    budget, source = memory_budget(TrainConfig(memory_budget_share=0.5))
    assert budget > 0
    assert "50% of the" in source and "available" in source
