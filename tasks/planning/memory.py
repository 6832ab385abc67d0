"""The night's memory plan: every model's peak memory estimated before anything trains.

Each configured model estimates its peak (training and scoring) from the night's users,
items and training interactions and its settings (``memory_estimate`` in ``models/``).
A model over ``train.memory_budget`` takes its scalable form where it has one (EASE: the
sparse form) or is left out of the night, with one line naming the model, the estimate,
the budget and the setting to change. The night goes on with the models that fit; the
popularity baseline, which the gate compares against, always fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from models import MODEL_CLASSES
from models.memory import DataShape, MemoryEstimate, gib
from tasks.config import TrainConfig

Action = Literal["train", "scalable", "skip"]


@dataclass(frozen=True)
class ModelPlan:
    """One model's place in the night: what it would cost and what happens to it."""

    name: str
    action: Action
    estimate: MemoryEstimate  # of the form it trains in (the scalable one when switched)
    dense_estimate: MemoryEstimate | None = None  # the form it was configured in, if switched
    line: str | None = None  # what the user reads when the plan changed something


@dataclass(frozen=True)
class MemoryPlan:
    """The plan for a night: its data's shape, the budget, each model and the train
    config to run (left-out models removed, switched ones in their scalable form)."""

    shape: DataShape
    budget_bytes: int
    budget_source: str
    models: list[ModelPlan]
    config: TrainConfig
    lines: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able, for the run summary and the MLflow parent run."""
        return {
            "users": self.shape.users,
            "items": self.shape.items,
            "interactions": self.shape.interactions,
            "budget_bytes": self.budget_bytes,
            "budget": self.budget_source,
            "models": {
                m.name: {"action": m.action, "peak_bytes": m.estimate.peak_bytes}
                for m in self.models
            },
            "lines": list(self.lines),
        }


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (``MemAvailable``), else
    the machine's physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def memory_budget(config: TrainConfig) -> tuple[int, str]:
    """The budget in bytes and where it came from (for the line the user reads)."""
    if config.memory_budget is not None:
        return int(config.memory_budget), f"train.memory_budget = {gib(config.memory_budget)}"
    available = available_memory()
    budget = int(available * config.memory_budget_share)
    return budget, (
        f"{config.memory_budget_share:.0%} of the {gib(available)} available "
        "(train.memory_budget_share; or set train.memory_budget)"
    )


def plan_models(
    config: TrainConfig, shape: DataShape, budget_bytes: int, source: str
) -> MemoryPlan:
    """Each model of ``config.models`` in the form that fits ``budget_bytes``, or left out."""
    plans: list[ModelPlan] = []
    lines: list[str] = []
    sections: dict[str, Any] = {}
    for name in config.models:
        cls = MODEL_CLASSES[name]
        params = getattr(config, name).model_dump()
        estimate = cls.memory_estimate(shape, **params)
        if estimate.peak_bytes <= budget_bytes:
            plans.append(ModelPlan(name, "train", estimate))
            continue
        scalable = cls.scalable_params(shape, **params)
        if scalable is not None:
            small = cls.memory_estimate(shape, **scalable)
            if small.peak_bytes <= budget_bytes:
                line = (
                    f"{name}: takes its scalable form ({_changes(params, scalable)}): as "
                    f"configured it needs about {gib(estimate.peak_bytes)} "
                    f"({estimate.dominant}), over the memory budget of {gib(budget_bytes)} "
                    f"({source}); this form needs about {gib(small.peak_bytes)}"
                )
                plans.append(ModelPlan(name, "scalable", small, estimate, line))
                lines.append(line)
                sections[name] = getattr(config, name).model_validate(scalable)
                continue
            estimate = small
        line = (
            f"{name}: left out of this night: it needs about {gib(estimate.peak_bytes)} "
            f"({estimate.dominant}), over the memory budget of {gib(budget_bytes)} "
            f"({source}) for {shape.users:,} users, {shape.items:,} items and "
            f"{shape.interactions:,} interactions; raise the budget, lower train.{name}'s "
            f"sizes, or remove {name} from train.models"
        )
        plans.append(ModelPlan(name, "skip", estimate, line=line))
        lines.append(line)
    kept = [p.name for p in plans if p.action != "skip"]
    planned = config.model_copy(update={**sections, "models": kept})
    return MemoryPlan(shape, budget_bytes, source, plans, planned, lines)


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    return ", ".join(f"{key} = {after[key]!r}" for key in after if before.get(key) != after[key])
