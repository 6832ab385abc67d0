"""Scoring benchmark: the production scoring-and-publishing path against a bare reference.

A synthetic catalogue (users x items, ``dim``-dimensional embeddings, ``seen``
random items per user) is scored twice over the same blocks of users:

* reference: ``U_block @ V.T`` then ``argpartition`` top-k; no masking, no ids,
  no writing;
* recpipe: the nightly path from the interactions in Parquet (raw string ids): users
  split into shards (tasks/data/shards.py), each shard's ids mapped, seen and blocked items
  excluded, sorted top-k, the published table built and streamed to Parquet, then
  published (tasks/publish.py: the database, SQLite by default, and the lake table). The
  model reads its user factors from a memory-mapped .npy file.

Each measurement runs in its own process so its peak memory (ru_maxrss) is its
own (the synthetic inputs are written by another one); running the path at N and 2N
users shows whether memory stays flat.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from models import BaseRecommender


class EmbeddingDot(BaseRecommender):
    """Scores are user embedding . item embedding (fixed factors given at construction)."""

    name: ClassVar[str] = "embedding_dot"
    fitted_attributes: ClassVar[tuple[str, ...]] = ("train_matrix_",)

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        super().__init__()
        self.user_factors = user_factors
        self.item_factors = item_factors

    def _fit(self, matrix: sp.csr_matrix, **inputs: Any) -> None:
        pass

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T


def synthetic(n_users: int, n_items: int, dim: int, seen: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, dim), dtype=np.float32)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    seen_items = rng.integers(0, n_items, size=(n_users, seen))
    return {"U": users, "V": items, "seen": seen_items}


def run_reference(n_users: int, n_items: int, dim: int, k: int, batch: int, seen: int) -> dict:
    data = synthetic(n_users, n_items, dim, seen)
    start = time.perf_counter()
    for s in range(0, n_users, batch):
        scores = data["U"][s : s + batch] @ data["V"].T
        np.argpartition(-scores, k - 1, axis=1)[:, :k]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "users_per_second": n_users / seconds}


def write_inputs(n_users: int, n_items: int, dim: int, seen: int, workdir: Path) -> dict:
    """The synthetic data as the scoring stage finds it: interactions in Parquet (raw string
    ids) and the model's factors in .npy files (the user factors are memory-mapped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = synthetic(n_users, n_items, dim, seen)
    np.save(workdir / "user_factors.npy", data["U"])
    np.save(workdir / "item_factors.npy", data["V"])
    path = workdir / "interactions.parquet"
    with pq.ParquetWriter(
        path, pa.schema([("user_id", pa.string()), ("item_id", pa.string())])
    ) as w:
        for s in range(0, n_users, 100_000):
            users = np.arange(s, min(s + 100_000, n_users))
            w.write_table(
                pa.table(
                    {
                        "user_id": np.repeat(_user_ids(users), seen),
                        "item_id": _item_ids(data["seen"][users].ravel()),
                    }
                )
            )
    return {"interactions": str(path)}


def _user_ids(users: np.ndarray) -> np.ndarray:
    return np.char.add("user", np.char.zfill(users.astype(str), 7)).astype(object)


def _item_ids(items: np.ndarray) -> np.ndarray:
    return np.char.add("item", np.char.zfill(items.astype(str), 6)).astype(object)


def run_recpipe(
    n_users: int,
    n_items: int,
    dim: int,
    k: int,
    batch: int,
    seen: int,
    workdir: Path,
    database_url: str | None,
    explain: bool,
    shard_rows: int,
) -> dict:
    from models.vocab import IdVocabulary
    from tasks.config import ScoreConfig
    from tasks.data.catalog import build_catalog
    from tasks.data.shards import read_shard, shard_interactions
    from tasks.publish import RECOMMENDATIONS, Output, Stores, publish_night
    from tasks.score import shard_totals, write_scores

    users = IdVocabulary(_user_ids(np.arange(n_users)))
    items = IdVocabulary(_item_ids(np.arange(n_items)))
    model = EmbeddingDot(
        np.load(workdir / "user_factors.npy", mmap_mode="r"), np.load(workdir / "item_factors.npy")
    )
    model.train_matrix_ = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    config = ScoreConfig(k=k, batch_users=batch, explain=explain, shard_rows=shard_rows)
    run = {"run_id": "bench", "run_date": date(2026, 1, 1), "model_version": "1"}
    start = time.perf_counter()
    shards = shard_interactions(workdir / "interactions.parquet", workdir / "shards", shard_rows)
    catalog = build_catalog(items, None, {items.ids[0]})
    popularity, similarity = None, None
    if explain:  # the nightly path's pass over the shards (tasks/score.py)
        popularity, similarity = shard_totals(shards.paths, items, shards.newest_timestamp, config)
    out = workdir / "recommendations"
    out.mkdir()
    rows = 0
    for s, path in enumerate(shards.paths):
        rows += write_scores(
            model,
            users,
            items,
            catalog,
            read_shard(path),
            config,
            out / f"part-{s:05d}.parquet",
            run,
            popularity=popularity,
            similarity=similarity,
        )["rows"]
    scored = time.perf_counter() - start
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    publish_night(
        Stores(workdir, url),
        "bench",
        date(2026, 1, 1),
        [Output("bench_recommendations", RECOMMENDATIONS, out)],
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "score_seconds": scored,
        "publish_seconds": seconds - scored,
        "users_per_second": n_users / seconds,
        "rows": rows,
        "shards": len(shards.paths),
    }


def _child(kind: str, args: dict) -> dict:
    """Run one measurement in a fresh process; add its peak RSS."""
    code = (
        "import json, resource, sys; from pathlib import Path; "
        "from flows.bench.scoring import run_reference, run_recpipe, write_inputs; "
        f"args = json.loads({json.dumps(json.dumps(args))}); "
        "args.get('workdir') and args.update(workdir=Path(args['workdir'])); "
        f"out = {kind if kind == 'write_inputs' else 'run_' + kind}(**args); "
        "out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps(out))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child ({kind}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def benchmark(
    n_users: int = 100_000,
    n_items: int = 20_000,
    dim: int = 64,
    k: int = 10,
    batch: int = 2048,
    seen: int = 20,
    database_url: str | None = None,
    explain: bool = False,
    shard_rows: int = 1_000_000,
) -> dict:
    """Reference and recpipe at N users, recpipe again at 2N users for memory growth."""
    base = {"n_items": n_items, "dim": dim, "k": k, "batch": batch, "seen": seen}
    out: dict[str, Any] = {
        "config": {"n_users": n_users, **base, "explain": explain, "shard_rows": shard_rows}
    }
    out["reference"] = _child("reference", {"n_users": n_users, **base})
    with tempfile.TemporaryDirectory(prefix="recpipe-bench-") as tmp:
        for label, users in (("recpipe", n_users), ("recpipe_2x", 2 * n_users)):
            workdir = Path(tmp) / label
            workdir.mkdir()
            _child(
                "write_inputs",
                {
                    "n_users": users,
                    "n_items": n_items,
                    "dim": dim,
                    "seen": seen,
                    "workdir": str(workdir),
                },
            )
            out[label] = _child(
                "recpipe",
                {
                    "n_users": users,
                    **base,
                    "workdir": str(workdir),
                    "database_url": database_url,
                    "explain": explain,
                    "shard_rows": shard_rows,
                },
            )
    out["throughput_ratio"] = (
        out["recpipe"]["users_per_second"] / out["reference"]["users_per_second"]
    )
    out["memory_growth_2x"] = out["recpipe_2x"]["peak_rss_mb"] / out["recpipe"]["peak_rss_mb"]
    return out


def report(result: dict) -> str:
    c = result["config"]
    lines = [
        (
            f"scoring benchmark: {c['n_users']:,} users x {c['n_items']:,} items, dim {c['dim']}, "
            f"k {c['k']}, blocks of {c['batch']}, {c['seen']} seen items per user, "
            f"explanations {'on' if c['explain'] else 'off'}"
        ),
        f"{'run':<12} {'users':>9} {'seconds':>8} {'users/s':>10} {'peak MB':>8}",
    ]
    for label, users in (
        ("reference", c["n_users"]),
        ("recpipe", c["n_users"]),
        ("recpipe_2x", 2 * c["n_users"]),
    ):
        r = result[label]
        lines.append(
            f"{label:<12} {users:>9,} {r['seconds']:>8.1f} {r['users_per_second']:>10,.0f} "
            f"{r['peak_rss_mb']:>8.0f}"
        )
    r = result["recpipe"]
    lines.append(
        f"recpipe split: scoring {r['score_seconds']:.1f} s, publishing "
        f"{r['publish_seconds']:.1f} s ({r['rows']:,} rows); user shards of about "
        f"{c['shard_rows']:,} interactions: {r['shards']} at 1x, {result['recpipe_2x']['shards']} "
        "at 2x"
    )
    lines.append(
        f"throughput ratio recpipe/reference: {result['throughput_ratio']:.2f} (target >= 0.5)"
    )
    lines.append(f"peak memory at 2x users / 1x users: {result['memory_growth_2x']:.2f}")
    return "\n".join(lines)
