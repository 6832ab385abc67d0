"""Scoring benchmark: the nightly's scoring-and-publishing path against a bare reference.

A synthetic catalogue (users x items, ``dim``-dimensional embeddings, ``seen``
random items per user over the last 8 weeks, items with titles and genres) is
scored twice over the same blocks of users:

* reference: ``U_block @ V.T`` then ``argpartition`` top-k, selected in place (no copy
  of the block); no masking, no ids, no writing;
* recpipe: what the nightly's scoring stage does (tasks/score.py) once the champion is
  resolved in the registry: the interactions in Parquet (raw string ids, timestamps)
  split into user shards (tasks/data/shards.py); recent popularity ("the last
  ``popular_days`` days" from the newest event) and, with explanations (on by default, as
  in the nightly), the item-item similarity summed over the shards and the similar-items
  table written; the model (user factors memory-mapped from .npy) and its id
  vocabularies (JSON) loaded; the item catalog (titles, genres, availability) built; per
  shard the users mapped, seen and blocked items excluded, sorted top-k with reasons, the
  published table streamed to Parquet; then both tables published (tasks/publish.py: the
  database, SQLite by default, and the lake tables). Everything after the inputs are
  written is inside the clock; loading is also printed as its own line.

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

RUN_DATE = date(2026, 1, 1)
GENRES = [f"genre{g:02d}" for g in range(18)]


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
    """``U_block @ V.T`` and an in-place ``argpartition`` per block (the k best items,
    unordered): the least any top-k scoring can do."""
    data = synthetic(n_users, n_items, dim, seen)
    kth = n_items - min(k, n_items)
    start = time.perf_counter()
    for s in range(0, n_users, batch):
        scores = data["U"][s : s + batch] @ data["V"].T
        np.argpartition(scores, kth, axis=1)[:, kth:]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "users_per_second": n_users / seconds}


def write_inputs(n_users: int, n_items: int, dim: int, seen: int, workdir: Path) -> dict:
    """The synthetic data as the scoring stage finds it: interactions in Parquet (raw string
    ids, timestamps over the 8 weeks before the run date), the items table (titles, genres,
    availability), the model's factors in .npy files and its vocabularies in JSON."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.vocab import IdVocabulary

    data = synthetic(n_users, n_items, dim, seen)
    np.save(workdir / "user_factors.npy", data["U"])
    np.save(workdir / "item_factors.npy", data["V"])
    (workdir / "users.json").write_text(IdVocabulary(_user_ids(np.arange(n_users))).to_json())
    (workdir / "items.json").write_text(IdVocabulary(_item_ids(np.arange(n_items))).to_json())
    rng = np.random.default_rng(1)
    end = pd.Timestamp(RUN_DATE, tz="UTC")
    path = workdir / "interactions.parquet"
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("timestamp", pa.timestamp("us", "UTC")),
        ]
    )
    with pq.ParquetWriter(path, schema) as w:
        for s in range(0, n_users, 100_000):
            users = np.arange(s, min(s + 100_000, n_users))
            ago = rng.integers(0, 56 * 86_400, size=users.size * seen)
            w.write_table(
                pa.table(
                    {
                        "user_id": np.repeat(_user_ids(users), seen),
                        "item_id": _item_ids(data["seen"][users].ravel()),
                        "timestamp": end - pd.to_timedelta(ago, unit="s"),
                    },
                    schema=schema,
                )
            )
    codes = np.arange(n_items)
    pd.DataFrame(
        {
            "item_id": _item_ids(codes).astype(str),
            "title": np.char.add("Title ", codes.astype(str)),
            "genres": [
                "|".join(GENRES[(c + j * 7) % len(GENRES)] for j in range(1 + c % 3)) for c in codes
            ],
            "available": codes % 97 != 0,  # about 1 % of the catalogue withdrawn
        }
    ).to_parquet(workdir / "items.parquet", index=False)
    return {"interactions": str(path)}


def _user_ids(users: np.ndarray) -> np.ndarray:
    return np.char.add("user", np.char.zfill(users.astype(str), 7)).astype(object)


def _item_ids(items: np.ndarray) -> np.ndarray:
    return np.char.add("item", np.char.zfill(items.astype(str), 6)).astype(object)


def _load_model(workdir: Path) -> tuple[EmbeddingDot, Any, Any]:
    from models.vocab import IdVocabulary

    users = IdVocabulary.from_json((workdir / "users.json").read_text())
    items = IdVocabulary.from_json((workdir / "items.json").read_text())
    model = EmbeddingDot(
        np.load(workdir / "user_factors.npy", mmap_mode="r"), np.load(workdir / "item_factors.npy")
    )
    model.train_matrix_ = sp.csr_matrix((len(users), len(items)), dtype=np.float32)
    return model, users, items


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
    import pandas as pd

    from models.vocab import IdVocabulary
    from tasks.config import ScoreConfig
    from tasks.data.explain import similar_items_table
    from tasks.data.shards import read_shard, shard_interactions
    from tasks.publish import publish_night
    from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Output, Stores
    from tasks.scoring.inputs import shard_totals
    from tasks.scoring.table import scoring_catalog, write_scores

    config = ScoreConfig(k=k, batch_users=batch, explain=explain, shard_rows=shard_rows)
    run = {"run_id": "bench", "run_date": RUN_DATE, "model_version": "1"}
    out = workdir / "scored"
    out.mkdir()
    start = time.perf_counter()
    # plan (tasks/score.py plan_scoring): shards, what they share, the similar-items table
    items = IdVocabulary.from_json((workdir / "items.json").read_text())
    shards = shard_interactions(workdir / "interactions.parquet", out / "shards", shard_rows)
    newest = shards.newest_timestamp
    popularity, similarity = shard_totals(shards.paths, items, newest, config)
    outputs = [Output("bench_recommendations", RECOMMENDATIONS, out / "recommendations")]
    if similarity is not None:
        similar = similar_items_table(similarity, items.ids.astype(str), config.similar_k)
        similar.insert(0, "run_date", pd.Series([RUN_DATE] * len(similar), dtype="date32[pyarrow]"))
        similar.insert(0, "run_id", "bench")
        similar.to_parquet(out / "similar_items.parquet", index=False)
        outputs.append(Output("bench_similar_items", SIMILAR_ITEMS, out / "similar_items.parquet"))
    planned = time.perf_counter()
    # each shard (score_shard): the model and vocabularies (once per process, as the
    # registry's cached load), the catalog, the shard's users scored and written
    model, users, items = _load_model(workdir)
    catalog = scoring_catalog(items, str(workdir / "items.parquet"), config)
    loaded = time.perf_counter()
    (out / "recommendations").mkdir()
    rows = 0
    for s, path in enumerate(shards.paths):
        rows += write_scores(
            model,
            users,
            items,
            catalog,
            read_shard(path),
            config,
            out / "recommendations" / f"part-{s:05d}.parquet",
            run,
            newest=newest,
            popularity=popularity,
            similarity=similarity,
        )["rows"]
    scored = time.perf_counter()
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    publish_night(Stores(workdir, url), "bench", RUN_DATE, outputs)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "plan_seconds": planned - start,
        "load_seconds": loaded - planned,
        "score_seconds": scored - loaded,
        "publish_seconds": start + seconds - scored,
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
    explain: bool = True,
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
        f"recpipe split: shards and shared totals {r['plan_seconds']:.1f} s, loading the model, "
        f"vocabularies and catalog {r['load_seconds']:.1f} s, scoring {r['score_seconds']:.1f} s, "
        f"publishing {r['publish_seconds']:.1f} s ({r['rows']:,} rows); user shards of about "
        f"{c['shard_rows']:,} interactions: {r['shards']} at 1x, {result['recpipe_2x']['shards']} "
        "at 2x"
    )
    lines.append(
        f"throughput ratio recpipe/reference: {result['throughput_ratio']:.2f} (target >= 0.5)"
    )
    lines.append(f"peak memory at 2x users / 1x users: {result['memory_growth_2x']:.2f}")
    return "\n".join(lines)
