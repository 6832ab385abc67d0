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


def parse_size(text: str) -> int:
    """``"5M"`` -> 5_000_000, ``"250k"`` -> 250_000, ``"1200"`` -> 1200."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"size {text!r}: expected a number like 1M, 500k or 20000") from None
    if value < 1000:
        raise ValueError(f"size {text!r}: at least 1000 interactions")
    return int(value)


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
    }


def bench_growth(
    sizes: list[int],
    models: list[str],
    data_root: Path,
    workspace_root: Path,
    n_items: int,
    events_per_user: int,
    seed: int = 42,
    overrides: dict | None = None,
    progress: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Run each size in turn; ``progress(results so far)`` after each. A size that fails
    (e.g. out of memory) ends the series and is reported with its error."""
    from tasks.config import dump_with_secrets, load_config

    results = []
    for n in sizes:
        start = time.perf_counter()
        data = dataset_for(data_root, n, n_items, events_per_user, seed)
        generated = time.perf_counter() - start
        folder = Path(data["folder"])
        config = load_config(
            overrides={
                "workspace": str(workspace_root / f"interactions-{n}"),
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
            results.append({"n": n, "failed": f"exit code {proc.returncode}:\n{tail}"})
            if progress:
                progress(results)
            break  # a larger size would fail the same way
        result = json.loads(lines[-1].removeprefix("RECPIPE-GROWTH "))
        floor = arrow_floor(folder / "interactions")  # same data, same machine, same run
        results.append({"n": n, "generate_seconds": round(generated, 1), **result, "floor": floor})
        if progress:
            progress(results)
    return results


def report(all_results: list[dict], models: list[str], n_items: int) -> str:
    results = [r for r in all_results if "failed" not in r]
    failed = [r for r in all_results if "failed" in r]
    stages = list(dict.fromkeys(s for r in results for s in r["stage_seconds"]))
    head = f"{'stage':<10}" + "".join(f"{_label(r['n']):>20}" for r in results)
    growth_head = "".join(
        f"{_label(a['n']) + '->' + _label(b['n']):>16}" for a, b in pairwise(results)
    )
    lines = [
        (
            f"recpipe bench growth: models {','.join(models)}, {n_items:,} items, "
            "seconds / peak resident MB of the flow's process while the stage ran; "
            "growth = (time ratio) / (size ratio)"
        ),
        "",
        head + growth_head,
    ]
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
            growth.append(f"{(tb / ta) / (b['n'] / a['n']):16.2f}" if ok else f"{'(< 0.5 s)':>16}")
        lines.append(f"{stage:<10}" + "".join(cells) + "".join(growth))
    lines.append(
        f"{'flow':<10}"
        + "".join(
            f"{r['total_seconds']:8.1f} s {r['peak_rss_mb']:6.0f} MB".rjust(20) for r in results
        )
        + "".join(
            f"{(b['total_seconds'] / a['total_seconds']) / (b['n'] / a['n']):16.2f}"
            for a, b in pairwise(results)
        )
    )
    lines += ["", *floor_report(results), ""]
    for r in results:
        lines.append(
            f"{_label(r['n'])}: {r['users']:,} users scored, {r['rows']:,} rows published, "
            f"champion {r['champion']}; data generated in {r['generate_seconds']} s "
            "(0 when reused)"
        )
    for r in failed:
        lines.append(f"{_label(r['n'])}: FAILED, {r['failed']}")
    return "\n".join(lines)


def floor_report(results: list[dict]) -> list[str]:
    """Each data stage beside the bare Arrow pass over the same rows: seconds and ratio."""
    measured = [r for r in results if r.get("floor")]
    if not measured:
        return []
    lines = [
        (
            "distance to the floor: a bare Arrow pass over the same interactions (read, null "
            "checks, per-user / per-item / duplicate-key group-bys, write Parquet), measured "
            "after each size's run; stage seconds / floor seconds"
        ),
        f"{'stage':<10}" + "".join(f"{_label(r['n']):>20}" for r in measured),
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
