"""``recpipe bench growth``: the whole nightly flow at growing sizes, stage by stage.

For each size (interactions) a synthetic log is generated once with ``tasks/sources/scale.py``
(cached under ``--data``, reused by later runs) and the nightly flow runs on it as a
``files`` source, in a fresh process per size so that each size's peak memory is its own.
Every stage's wall time and the process's peak resident memory while the stage ran are
printed per size, with the growth factor between consecutive sizes divided by the size
ratio: about 1 means the stage grows linearly, clearly above 1 faster than linearly.

The catalogue size is held fixed across sizes (``--items``) and users grow with the
interactions (``--events-per-user``), so a model's item-side cost is the same at every
size and what grows is the number of users and events.

The items axis is the other way round: one interactions size and several catalogue sizes
(``--items 10k,100k,1M``), one night per catalogue, so what grows is the item side (the
models' item-item and item-factor state, the similar-items table, scoring's width) while
the events and users stay the same. Its report has the same table with one column per
catalogue size, and each night's memory plan: which models kept their configured form,
which took their scalable form and which were left out, with the plan's estimates.
After each catalogue's night, ALS is fitted on the same interactions and its ranking
through the item index is compared with exact ranking on a sample of users
(:func:`flows.bench.ann.bench_ann`): recall@10 and both rankings' times, at that width.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from itertools import pairwise
from pathlib import Path

from flows.bench.floor import DATA_STAGES, arrow_floor, ratios

RUN_DATE = date(2026, 3, 2)


MIN_ITEMS = 10  # the generator's catalogue has at least one item per genre (10 genres)


def parse_size(text: str, what: str = "interactions", minimum: int = 1000) -> int:
    """``"5M"`` -> 5_000_000, ``"250k"`` -> 250_000, ``"1200"`` -> 1200."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"size {text!r}: expected a number like 1M, 500k or 20000") from None
    if value < minimum:
        raise ValueError(f"size {text!r}: at least {minimum} {what}")
    return int(value)


def parse_sizes(text: str, what: str = "interactions", minimum: int = 1000) -> list[int]:
    """A comma-separated list of sizes: ``"10k,100k,1M"`` -> [10_000, 100_000, 1_000_000]."""
    sizes = [parse_size(part, what, minimum) for part in text.split(",") if part.strip()]
    if not sizes:
        raise ValueError(f"{text!r}: no sizes; expected a list like 10k,100k,1M")
    return sizes


def growth_runs(sizes: list[int], items: list[int]) -> list[tuple[int, int]]:
    """The (interactions, items) of each night: several sizes at one catalogue size, or
    one size at several catalogue sizes."""
    if len(sizes) > 1 and len(items) > 1:
        raise ValueError(
            f"several interaction sizes ({len(sizes)}) and several catalogue sizes "
            f"({len(items)}): grow one axis at a time, e.g. --sizes 1M --items 10k,100k,1M"
        )
    return [(n, m) for n in sizes for m in items]


def dataset_for(data_root: Path, n: int, n_items: int, events_per_user: int, seed: int) -> dict:
    """The generated log for ``n`` interactions (generated on first use)."""
    from tasks.sources.scale import generate_scale

    folder = data_root / f"interactions-{n}-items-{n_items}-epu-{events_per_user}-seed-{seed}"
    manifest = folder / "_manifest.json"
    if not manifest.exists():
        generate_scale(
            folder,
            n,
            n_users=max(100, n // events_per_user),
            n_items=n_items,
            seed=seed,
            end=str(RUN_DATE),
        )
    return {"folder": str(folder), "generated": json.loads(manifest.read_text())}


def run_one(config_json: str) -> dict:
    """One nightly run in this process (the child side); prints its summary as JSON."""
    from flows.environment import prepare_environment
    from tasks.config import PipelineConfig

    config = PipelineConfig.model_validate_json(config_json)
    prepare_environment(config.workspace, temporary_server=True)  # before Prefect is imported
    from flows.nightly import nightly_flow_for

    summary = nightly_flow_for(config)(config=config, run_date=RUN_DATE)
    return {
        "stage_seconds": summary["stage_seconds"],
        "stage_peak_mb": summary["stage_peak_mb"],
        "total_seconds": summary["total_seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": summary["published"]["rows"],
        "users": summary["scoring"]["users"],
        "champion": summary["promotion"]["challenger"],
        "trained": [m["model"] for m in summary.get("models", [])],
        "memory_plan": summary.get("memory_plan"),
    }


def bench_growth(
    sizes: list[int],
    models: list[str],
    data_root: Path,
    workspace_root: Path,
    n_items: list[int],
    events_per_user: int,
    seed: int = 42,
    overrides: dict | None = None,
    progress: Callable[[list[dict]], None] | None = None,
    ann_users: int = 0,
) -> list[dict]:
    """Run each night of :func:`growth_runs` in turn; ``progress(results so far)`` after
    each. A night that fails (e.g. out of memory) ends the series and is reported with
    its error. With ``ann_users``, each night is followed by the item index's recall
    against exact ranking on that many sampled users of the same interactions."""
    from tasks.config import dump_with_secrets, load_config

    results = []
    for n, items in growth_runs(sizes, n_items):
        start = time.perf_counter()
        data = dataset_for(data_root, n, items, events_per_user, seed)
        generated = time.perf_counter() - start
        folder = Path(data["folder"])
        config = load_config(
            overrides={
                "workspace": str(workspace_root / f"interactions-{n}-items-{items}"),
                "ingest": {
                    "source": "files",
                    "files": {
                        "path": str(folder / "interactions"),
                        "items_path": str(folder / "items.parquet"),
                    },
                },
                "train": {"models": models},
                **(overrides or {}),
            },
            environ={},
        )
        code = (
            "import json, sys; from flows.bench.growth import run_one; "
            "print('RECPIPE-GROWTH ' + json.dumps(run_one(sys.stdin.read())))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=dump_with_secrets(config),
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RECPIPE-GROWTH ")]
        if proc.returncode != 0 or not lines:
            tail = proc.stderr[-3000:]
            failure = f"exit code {proc.returncode}:\n{tail}"
            results.append({"n": n, "items": items, "failed": failure})
            if progress:
                progress(results)
            break  # a larger size would fail the same way
        result = json.loads(lines[-1].removeprefix("RECPIPE-GROWTH "))
        floor = arrow_floor(folder / "interactions")  # same data, same machine, same run
        results.append(
            {
                "n": n,
                "items": items,
                "generate_seconds": round(generated, 1),
                **result,
                "floor": floor,
            }
        )
        if ann_users:
            from flows.bench.ann import bench_ann

            results[-1]["ann"] = bench_ann(folder / "interactions", "als", ann_users)
        if progress:
            progress(results)
    return results


def report(all_results: list[dict], models: list[str], n_items: int) -> str:
    """The interactions axis: one column per size, the catalogue fixed."""
    results = [r for r in all_results if "failed" not in r]
    failed = [r for r in all_results if "failed" in r]
    lines = [
        (
            f"recpipe bench growth: models {','.join(models)}, {n_items:,} items, "
            "seconds / peak resident MB of the flow's process while the stage ran; "
            "growth = (time ratio) / (size ratio)"
        ),
        "",
        *stage_table(results, "n"),
    ]
    lines += ["", *floor_report(results), ""]
    for r in results:
        lines.append(
            f"{_label(r['n'])}: {r['users']:,} users scored, {r['rows']:,} rows published, "
            f"champion {r['champion']}; data generated in {r['generate_seconds']} s "
            "(0 when reused)"
        )
        plan = r.get("memory_plan")
        if plan and any(m["action"] != "train" for m in plan["models"].values()):
            lines.append(f"{_label(r['n'])}: {plan_summary(plan)}")
    for r in failed:
        lines.append(f"{_label(r['n'])}: FAILED, {r['failed']}")
    return "\n".join(lines)


def items_report(all_results: list[dict], models: list[str], n_interactions: int) -> str:
    """The items axis: one column per catalogue size, the interactions fixed; each
    night's memory plan below the table."""
    results = [r for r in all_results if "failed" not in r]
    failed = [r for r in all_results if "failed" in r]
    lines = [
        (
            f"recpipe bench growth, items axis: models {','.join(models)}, "
            f"{n_interactions:,} interactions, seconds / peak resident MB of the flow's "
            "process while the stage ran; growth = (time ratio) / (catalogue size ratio)"
        ),
        "",
        *stage_table(results, "items"),
    ]
    lines += ["", *floor_report(results, "items"), ""]
    for r in results:
        label = f"{_label(r['items'])} items"
        lines.append(
            f"{label}: {r['users']:,} users scored, {r['rows']:,} rows published, "
            f"trained {', '.join(r.get('trained') or []) or 'none'}, champion "
            f"{r['champion']}; data generated in {r['generate_seconds']} s (0 when reused)"
        )
        lines.append(f"{label}: {plan_summary(r.get('memory_plan'))}")
        if r.get("ann"):
            lines.append(f"{label}: {ann_summary(r['ann'])}")
    for r in failed:
        lines.append(f"{_label(r['items'])} items: FAILED, {r['failed']}")
    return "\n".join(lines)


def stage_table(results: list[dict], axis: str) -> list[str]:
    """Rows of every stage's seconds and peak MB per night (one column per value of
    ``results[i][axis]``), then the growth between neighbouring columns: the time ratio
    divided by the ratio of ``axis``."""
    stages = list(dict.fromkeys(s for r in results for s in r["stage_seconds"]))
    head = f"{'stage':<10}" + "".join(f"{_label(r[axis]):>20}" for r in results)
    growth_head = "".join(
        f"{_label(a[axis]) + '->' + _label(b[axis]):>16}" for a, b in pairwise(results)
    )
    lines = [head + growth_head]
    for stage in stages:
        cells = []
        for r in results:
            t = r["stage_seconds"].get(stage)
            m = r["stage_peak_mb"].get(stage)
            cells.append("-".rjust(20) if t is None else f"{t:8.1f} s {m:6.0f} MB".rjust(20))
        growth = []
        for a, b in pairwise(results):
            ta, tb = a["stage_seconds"].get(stage), b["stage_seconds"].get(stage)
            ok = ta and tb and ta >= 0.5
            growth.append(
                f"{(tb / ta) / (b[axis] / a[axis]):16.2f}" if ok else f"{'(< 0.5 s)':>16}"
            )
        lines.append(f"{stage:<10}" + "".join(cells) + "".join(growth))
    lines.append(
        f"{'flow':<10}"
        + "".join(
            f"{r['total_seconds']:8.1f} s {r['peak_rss_mb']:6.0f} MB".rjust(20) for r in results
        )
        + "".join(
            f"{(b['total_seconds'] / a['total_seconds']) / (b[axis] / a[axis]):16.2f}"
            for a, b in pairwise(results)
        )
    )
    return lines


def ann_summary(ann: dict) -> str:
    """The item index against exact ranking at one width, in a line."""
    recall = next(v for key, v in ann.items() if key.startswith("recall@"))
    k = ann["k"]
    return (
        f"ALS through the item index vs exact, {ann['sampled users']:,} sampled users: "
        f"recall@{k} {recall:.4f}; exact {ann['exact s']:.1f} s, index {ann['index s']:.1f} s "
        f"(graph built in {ann['graph build s']:.1f} s, {ann['graph MiB on disk']:.0f} MiB "
        "on disk)"
    )


PLAN_ACTIONS = {
    "train": "as configured",
    "scalable": "switched to its scalable form",
    "skip": "left out",
}


def plan_summary(plan: dict | None) -> str:
    """One night's memory plan in a line: the budget, and each model's fate with the
    plan's estimate of its peak (of the form it trains in)."""
    if not plan:
        return "memory plan: not in the night's summary"
    from models.memory import gib

    fates = ", ".join(
        f"{name} {PLAN_ACTIONS.get(m['action'], m['action'])} (about {gib(m['peak_bytes'])})"
        for name, m in plan["models"].items()
    )
    return f"memory plan, budget {gib(plan['budget_bytes'])}: {fates or 'no models'}"


def floor_report(results: list[dict], axis: str = "n") -> list[str]:
    """Each data stage beside the bare Arrow pass over the same rows: seconds and ratio,
    one column per value of ``results[i][axis]``."""
    measured = [r for r in results if r.get("floor")]
    if not measured:
        return []
    lines = [
        (
            "distance to the floor: a bare Arrow pass over the same interactions (read, null "
            "checks, per-user / per-item / duplicate-key group-bys, write Parquet), measured "
            "after each size's run; stage seconds / floor seconds"
        ),
        f"{'stage':<10}" + "".join(f"{_label(r[axis]):>20}" for r in measured),
        f"{'floor':<10}" + "".join(f"{r['floor']['seconds']:8.2f} s".rjust(20) for r in measured),
    ]
    for stage in DATA_STAGES:
        cells = []
        for r in measured:
            t = r["stage_seconds"].get(stage)
            ratio = ratios(r["stage_seconds"], r["floor"]["seconds"]).get(stage)
            cells.append(
                "-".rjust(20)
                if t is None or ratio is None
                else f"{t:7.1f} s {ratio:6.1f}x".rjust(20)
            )
        lines.append(f"{stage:<10}" + "".join(cells))
    return lines


def _label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)
