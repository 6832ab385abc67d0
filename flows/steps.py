"""How a night runs its stage functions: through a *step*.

A step calls one stage function (``step(fn, *args, **kwargs)``) and fans one out over
pieces (``step.fan_out(fn, calls)``: the feature partitions, the scoring shards). The
night's code is the same whichever step runs it:

* :class:`Direct` calls each function here, in this process: the backtest, tests, any
  caller without a Prefect flow run;
* :class:`AsTasks` (the nightly flow) runs each function ``f`` as the Prefect task
  ``f_task`` defined beside it in its module, so the task's name, run names and retries
  are the ones the UI shows, and submits fanned-out pieces to the workers of a Dask task
  runner.

:func:`features_in_partitions` and :func:`score_in_shards` are the two stages made of
several functions; both run through a step.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tasks.config import FeatureConfig
    from tasks.features import FeaturesResult
    from tasks.score import ScoreResult


class Step(Protocol):
    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

    def fan_out(self, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]: ...


class Direct:
    """Each stage function called in this process; pieces one after another."""

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def fan_out(self, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
        return [fn(*args) for args in calls]


class AsTasks:
    """Each stage function as its Prefect task run (inside a flow run)."""

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return task_of(fn)(*args, **kwargs)

    def fan_out(self, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
        """Submitted to the cluster's workers on a Dask task runner, otherwise one after
        another here, so memory holds one piece at a time."""
        from prefect.context import TaskRunContext, get_run_context

        task = task_of(fn)
        context = get_run_context()
        runner = None if isinstance(context, TaskRunContext) else context.task_runner
        if type(runner).__name__ == "DaskTaskRunner":
            futures = [task.submit(*args) for args in calls]
            return [future.result() for future in futures]
        return [task(*args) for args in calls]


def task_of(fn: Callable[..., Any]) -> Any:
    """The Prefect task of stage function ``fn``: ``<fn>_task`` in ``fn``'s module (looked
    up at each call, so a replaced task is the one that runs)."""
    name = f"{fn.__name__}_task"
    task = getattr(sys.modules[fn.__module__], name, None)
    if task is None:
        raise TypeError(
            f"{fn.__module__}.{fn.__name__} has no Prefect task; expected {name} beside it "
            "(`<name>_task = task(...)(<name>)`)"
        )
    return task


def features_in_partitions(
    step: Step, validated_path: str, out_dir: str, config: FeatureConfig
) -> FeaturesResult:
    """Partition by user, collect each partition's ids, write the vocabularies, encode and
    split each partition, finish (tasks/features.py)."""
    from tasks.features import (
        encode_partition,
        finish_features,
        partition_ids,
        plan_features,
        write_vocabularies,
    )

    plan = step(plan_features, validated_path, out_dir, config)
    parts = range(len(plan.partitions))
    ids = step.fan_out(partition_ids, [(plan, part) for part in parts])
    vocabularies = step(write_vocabularies, plan, ids)
    del ids
    cutoff = vocabularies.get("holdout") or vocabularies["cutoff"]
    counts = step.fan_out(encode_partition, [(plan, part, cutoff) for part in parts])
    return step(finish_features, plan, vocabularies, counts)


def score_in_shards(step: Step, **plan: Any) -> ScoreResult:
    """Plan (``plan``: :func:`tasks.score.plan_scoring`'s arguments), score each user
    shard, finish (tasks/score.py)."""
    from tasks.score import ScoreResult, finish_scoring, plan_scoring, score_shard

    start = time.perf_counter()
    planned = step(plan_scoring, **plan)
    parts = step.fan_out(score_shard, [(planned, shard) for shard in range(len(planned.shards))])
    return ScoreResult(**step(finish_scoring, planned, parts, time.perf_counter() - start))
