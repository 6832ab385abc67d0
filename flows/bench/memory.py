"""``python -m flows.bench.memory``: each model's memory estimate against what it uses.

For each model and each synthetic shape (users x items x interactions, items drawn with a
long-tail popularity, users with a long-tail activity), the model is fitted in a fresh
process, with sequences and an early-stopping target for every active user (the most
validation users there can be, as the estimates assume), then scores one block of
``SCORE_USERS`` users. The process's peak resident memory after fitting and scoring
(``ru_maxrss``) minus its peak before (the data loaded, the libraries imported) is the
measured increase; the table sets it beside the model's ``memory_estimate`` (the larger
of training and scoring) and their ratio. Training is kept to one or two epochs so the
whole table takes minutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from models import KERAS_MODELS
from models.memory import SCORE_USERS, DataShape, gib

SHAPES = {
    "small": DataShape(users=2_000, items=5_000, interactions=60_000),
    "medium": DataShape(users=10_000, items=30_000, interactions=300_000),
}

# The models' defaults, trained briefly (epochs do not change what one epoch allocates)
BENCH_PARAMS: dict[str, dict[str, Any]] = {
    "popularity": {},
    "item_knn": {},
    "als": {"iterations": 2},
    "bpr": {"iterations": 2},
    "mult_dae": {"epochs": 1},
    "mult_vae": {"epochs": 1},
    "recvae": {"epochs": 1},
    "gru4rec": {"epochs": 1},
    "caser": {"epochs": 1},
    "sasrec": {"epochs": 1, "stride": None},
    "two_tower": {"epochs": 1},
    "ease_mult_dae": {"mult_dae": {"epochs": 1}},
}
# EASE's dense inverse at the medium width is several GB on a shared machine: the hybrid
# is measured at the small shape unless asked for by name
DEFAULT_SKIP = {("ease_mult_dae", "medium")}


def synthetic(shape: DataShape, seed: int = 0) -> dict[str, np.ndarray]:
    """Distinct (user, item) pairs, about ``shape.interactions`` of them: items by a Zipf-like
    popularity (weight 1 / (rank + 10)), users by a log-normal activity; each user's items in
    a random order (their sequence) and one unseen item each as the validation target."""
    rng = np.random.default_rng(seed)
    item_weight = 1.0 / (np.arange(shape.items) + 10.0)
    user_weight = rng.lognormal(0.0, 1.0, shape.users)
    draws = int(shape.interactions * 1.3)
    users = rng.choice(shape.users, draws, p=user_weight / user_weight.sum())
    items = rng.choice(shape.items, draws, p=item_weight / item_weight.sum())
    keys = np.unique(users.astype(np.int64) * shape.items + items)
    keys = rng.permutation(keys)[: shape.interactions]
    matrix = sp.csr_matrix(
        (np.ones(len(keys), np.float32), (keys // shape.items, keys % shape.items)),
        shape=(shape.users, shape.items),
    )
    order = rng.permutation(matrix.nnz)  # a random time order within each user
    rows = np.repeat(np.arange(shape.users), np.diff(matrix.indptr))
    by_user = order[np.argsort(rows[order], kind="stable")]
    active = np.flatnonzero(np.diff(matrix.indptr) > 0)
    targets = rng.integers(shape.items, size=len(active))
    return {
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
        "sequence_items": matrix.indices[by_user].astype(np.int64),
        "validation_users": active,
        "validation_items": targets,
    }


def _inputs(path: Path, shape: DataShape) -> tuple[sp.csr_matrix, list[np.ndarray], tuple]:
    arrays = np.load(path)
    matrix = sp.csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(shape.users, shape.items)
    )
    sequences = np.split(arrays["sequence_items"], matrix.indptr[1:-1])
    users = arrays["validation_users"]
    relevant = sp.csr_matrix(
        (np.ones(len(users), np.float32), (np.arange(len(users)), arrays["validation_items"])),
        shape=(len(users), shape.items),
    )
    return matrix, sequences, (users, relevant)


def measure(name: str, path: Path, shape: DataShape) -> dict[str, Any]:
    """In this process: the peak memory increase of fitting ``name`` and scoring a block."""
    from models import MODEL_CLASSES, make_recommender

    if name in KERAS_MODELS or name == "ease_mult_dae":
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    if name in {"als", "bpr"}:
        import implicit.cpu.als
        import implicit.cpu.bpr  # noqa: F401
    matrix, sequences, validation = _inputs(path, shape)
    actual = DataShape(shape.users, shape.items, int(matrix.nnz))
    params = BENCH_PARAMS[name]
    estimate = MODEL_CLASSES[name].memory_estimate(actual, **params)
    gc.collect()
    before = _resident_kib()
    model = make_recommender(name, **params)
    model.fit(matrix, sequences, validation=validation)
    model.score(np.arange(min(SCORE_USERS, shape.users)))
    after = _peak_kib()
    return {
        "model": name,
        "interactions": actual.interactions,
        "train_bytes": estimate.train_bytes,
        "score_bytes": estimate.score_bytes,
        "dominant": estimate.dominant,
        "measured_bytes": max(after - before, 0) * 1024,
    }


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _resident_kib() -> int:
    """The resident memory now, and the peak mark reset to it (Linux: ``clear_refs`` 5), so
    loading's freed transients do not hide the fit's peak; elsewhere the peak so far."""
    now = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        now = None
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_kib() -> int:
    """The process's peak resident memory (since the reset), in KiB."""
    peak = _status_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(
    models: list[str] | None = None, shapes: list[str] | None = None, workdir: Path | None = None
) -> list[dict[str, Any]]:
    """One row per (model, shape): estimate, measured increase and their ratio; each model
    fitted in its own process, one at a time."""
    names = models or list(BENCH_PARAMS)
    chosen = shapes or list(SHAPES)
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for shape_name in chosen:
            shape = SHAPES[shape_name]
            path = Path(tmp) / f"{shape_name}.npz"
            # numpy's stub reads **arrays as possibly holding its allow_pickle flag
            np.savez(path, **synthetic(shape))  # type: ignore[arg-type]
            for name in names:
                if not models and (name, shape_name) in DEFAULT_SKIP:
                    continue
                command = [sys.executable, "-m", "flows.bench.memory", "--child", name]
                command += ["--shape", shape_name, "--data", str(path)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode:
                    tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                    rows.append({"model": name, "shape": shape_name, "error": tail[0]})
                else:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    peak = max(row["train_bytes"], row["score_bytes"])
                    measured = row["measured_bytes"]
                    row.update(shape=shape_name, ratio=peak / measured if measured else None)
                    rows.append(row)
                print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['model']:<14} {row['shape']:<7} failed: {row['error']}"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
    return (
        f"{row['model']:<14} {row['shape']:<7} {gib(row['train_bytes']):>10} "
        f"{gib(row['score_bytes']):>10} {gib(row['measured_bytes']):>10} "
        f"{ratio:>6}  {row['dominant']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument("--shapes", help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, Path(args.data), SHAPES[args.shape])))
        return
    header = f"{'model':<14} {'shape':<7} {'train est':>10} {'score est':>10} {'measured':>10}"
    print(f"{header} {'ratio':>6}  dominant", flush=True)
    run(
        args.models.split(",") if args.models else None,
        args.shapes.split(",") if args.shapes else None,
    )


if __name__ == "__main__":
    main()
