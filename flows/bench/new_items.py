"""The new-items protocol's leaderboard (``recpipe evaluate --protocol new-items``) and
its benchmark on MovieLens (``python -m flows.bench.new_items ml-100k --path DIR``, also
``recpipe bench new-items``) and on Gowalla's venues (``python -m flows.bench.new_items
gowalla --path DIR --users N``: the venues' coordinates are their content).

Leaderboard (tasks/evaluation/new_items.py): 20% of the items held out with all their
events; each model's setting chosen on validation NDCG over the kept items (as every
leaderboard does), then the held-out items ranked for each user who chose one. A
content model ranks them with ``score_content``; a model without content cannot tell
them apart and its row says so, with no figures. A ``random`` row gives the expected
figures of a seeded random ranking.

Benchmark: that leaderboard with the content models registered, popularity and random,
beside LightFM (WARP) on the same split and the same encoded content
(flows/bench/new_items_lightfm.py; on coordinates also as grid cells); then the warm
protocol (``random``) for ``two_tower`` with its content and with ``use_content=false``.
The users' attributes on the user side, with and without: flows/bench/new_items_users.py.
One table: NDCG@10, its ratio to random and to LightFM, and the run time of each row.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flows.bench.fitting import (
    check_social,
    choose_model,
    evaluate_model,
    leaderboard_row,
    prepare,
    prepare_split,
    users_content,
)
from flows.bench.grids import GRIDS
from models import MODEL_CLASSES
from models.content import ContentScoring
from models.metrics import evaluate_rankings
from tasks.evaluation.catalogue import CatalogueContent
from tasks.evaluation.new_items import (
    NEW_ITEMS_SHARE,
    RANDOM_SHUFFLES,
    NewItemsSplit,
    random_reference,
    rank_new_items,
    split_new_items,
)

METRICS = ("ndcg", "recall", "hit", "mrr")
LIGHTFM_REFERENCE = "lightfm"  # the row the ratios are taken against


def content_models() -> list[str]:
    """The registered models that rank items from their content alone."""
    return sorted(name for name, cls in MODEL_CLASSES.items() if issubclass(cls, ContentScoring))


def run_new_items_leaderboard(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None,
    catalogue: CatalogueContent,
    models: list[str],
    k: int = 10,
    seed: int = 42,
    share: float = NEW_ITEMS_SHARE,
    log: Any = None,
    refit: bool = False,
    edges: pd.DataFrame | None = None,
    direction: str = "mutual",
    shuffles: int = RANDOM_SHUFFLES,
    grids: dict[str, list[dict]] | None = None,
    users: CatalogueContent | None = None,
) -> pd.DataFrame:
    """One row per model and a ``random`` row, best test NDCG first (models without
    figures last). ``log(row, prepared)`` is called after each model and the random row;
    ``grids``: the settings to try per model (default: flows/bench/grids.py); ``users``:
    the users' attributes, ``user_content`` of the models that read it."""
    check_social(models, edges)
    s = split_new_items(interactions, share, seed)
    user_content = users_content(users, s.warm, models)
    content = catalogue.content(s.item_ids)
    data = prepare_split(s.warm, items, edges, direction, content, user_content)
    rows = []
    for name in models:
        row = new_items_row(name, s, data, k, seed, refit, (grids or {}).get(name))
        if log is not None:
            log(row, data)
        rows.append(row)
    reference = random_row(s, k, shuffles, seed)
    if log is not None:
        log(reference, data)
    rows.append(reference)
    return sort_rows(pd.DataFrame(rows).drop(columns=["history"]), k)


def new_items_row(
    name: str,
    s: NewItemsSplit,
    data: Any,
    k: int,
    seed: int,
    refit: bool,
    grid: list[dict] | None = None,
) -> dict:
    """``name`` tuned on the kept items' validation, then the held-out items ranked."""
    chosen = choose_model(name, data, k, grid, seed, refit)
    users, relevant = s.target()
    assert data.content is not None
    start = time.perf_counter()
    recommended, how = rank_new_items(
        chosen.model, users, data.train_valid, data.content.rows(slice(s.n_kept, None)), k
    )
    scoring_seconds = time.perf_counter() - start
    if recommended is None:
        metrics = {f"{m}@{k}": math.nan for m in METRICS} | {"n_users": len(users)}
        note = how
    else:
        metrics = evaluate_rankings(recommended, relevant, k, n_items=len(s.new_items))
        note = "score_content over the held-out items' content"
    return leaderboard_row(name, chosen, metrics, k, scoring_seconds, refit, note=note)


def random_row(s: NewItemsSplit, k: int, shuffles: int, seed: int) -> dict:
    """The reference row: the expected figures of a seeded random ranking."""
    start = time.perf_counter()
    metrics = random_reference(s.target()[1], k, shuffles, seed)
    return {
        "model": "random",
        "inputs": "-",
        "note": f"reference: a random ranking, the mean of {shuffles} seeded shuffles",
        "params": {"shuffles": shuffles, "seed": seed},
        "tried": 0,
        **{f"test_{m}": v for m, v in metrics.items()},
        "train_seconds": 0.0,
        "scoring_seconds": round(time.perf_counter() - start, 3),
        "refit": False,
        "history": {},
    }


def sort_rows(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    return frame.sort_values(
        f"test_ndcg@{k}", ascending=False, na_position="last", ignore_index=True
    )


# -- the benchmark ---------------------------------------------------------------------


def movielens(path: Path, dataset: str) -> tuple[pd.DataFrame, CatalogueContent]:
    """MovieLens ``dataset`` (ml-100k, ml-1m) from a local folder, with its catalogue's
    content (title text, genres, year) as ``recpipe evaluate`` detects it."""
    from tasks.config import ContentConfig, MovieLensConfig
    from tasks.evaluation.catalogue import catalogue_from_source
    from tasks.sources.movielens import load_movielens

    source = f"movielens-{dataset.removeprefix('ml-')}"
    data = load_movielens(source, MovieLensConfig(path=path), path)
    interactions = data.interactions.dropna(subset=["user_id", "item_id", "timestamp"])
    return interactions, catalogue_from_source(data.items, None, ContentConfig(), source)


def gowalla(path: Path) -> tuple[pd.DataFrame, CatalogueContent]:
    """A Gowalla folder's check-ins as events (``value``: the check-in count) and its
    venues' coordinates as content (kind ``coordinates``, declared, nothing detected).

    Gowalla has no timestamps: every event gets the same one (the protocols used here
    split each user's events at random, never by time). Venues are those with check-ins;
    one without a row in ``pois.tsv`` has no content (its mask false)."""
    from tasks.config import ContentConfig
    from tasks.config.content import CoordinateColumns
    from tasks.errors import DataError
    from tasks.evaluation.catalogue import catalogue_from_source

    folder = Path(path).expanduser()
    missing = [n for n in ("checkins.tsv", "pois.tsv") if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{folder}: {', '.join(missing)} missing; expected the Gowalla folder with "
            "checkins.tsv (user_id, poi_id, checkins) and pois.tsv (poi_id, latitude, "
            "longitude); pass it with --path, e.g. /work/shared/datasets/gowalla"
        )
    checkins = pd.read_csv(folder / "checkins.tsv", sep="\t", dtype={"user_id": str, "poi_id": str})
    pois = pd.read_csv(folder / "pois.tsv", sep="\t", dtype={"poi_id": str})
    interactions = pd.DataFrame(
        {
            "user_id": checkins["user_id"].astype(str),
            "item_id": checkins["poi_id"].astype(str),
            "timestamp": pd.Timestamp(0, unit="s", tz="UTC"),
            "value": checkins["checkins"].astype("float64") if "checkins" in checkins else 1.0,
        }
    )
    venues = pois[pois["poi_id"].isin(set(interactions["item_id"]))]
    items = pd.DataFrame(
        {
            "item_id": venues["poi_id"].astype(str).to_numpy(),
            "latitude": pd.to_numeric(venues["latitude"], errors="coerce").to_numpy(),
            "longitude": pd.to_numeric(venues["longitude"], errors="coerce").to_numpy(),
        }
    )
    config = ContentConfig(
        detect=False,
        coordinates=[CoordinateColumns(latitude="latitude", longitude="longitude")],
    )
    return interactions, catalogue_from_source(items, None, config, "gowalla")


def sample_users(
    interactions: pd.DataFrame, users: int | None, min_events: int = 1, seed: int = 42
) -> tuple[pd.DataFrame, str]:
    """The events of the users with at least ``min_events`` distinct items, then of
    ``users`` of them drawn at random (``seed``; all when None or more than there are),
    every event of each kept user; and a line saying what was kept."""
    per_user = interactions.drop_duplicates(["user_id", "item_id"]).groupby("user_id").size()
    eligible = np.array(sorted(per_user.index[per_user >= min_events]), dtype=object)
    chosen = eligible
    if users is not None and users < len(eligible):
        rng = np.random.default_rng(seed)
        chosen = np.sort(eligible[rng.choice(len(eligible), users, replace=False)])
    kept = interactions[interactions["user_id"].isin(set(chosen))].reset_index(drop=True)
    line = (
        f"sample: {len(chosen):,} of {per_user.size:,} users ({len(eligible):,} with at "
        f"least {min_events} distinct items; seed {seed}), all their events: "
        f"{len(kept):,} events over {kept['item_id'].nunique():,} items"
    )
    return kept, line


def bench(
    interactions: pd.DataFrame,
    catalogue: CatalogueContent,
    k: int = 10,
    seed: int = 42,
    share: float = NEW_ITEMS_SHARE,
    epochs: int | None = None,
    lightfm_epochs: int = 100,
    warm: bool = True,
    out: Any = print,
    lightfm_cells: bool = False,
) -> pd.DataFrame:
    """Every row of the benchmark (module docstring): protocol, model, NDCG@k, seconds.
    ``lightfm_cells``: one more LightFM row with coordinates as grid cells
    (:data:`flows.bench.new_items_lightfm.GRID_DEGREES`) instead of their unit vector."""
    from flows.bench.new_items_lightfm import lightfm_missing, lightfm_row

    short = {"epochs": epochs} if epochs else {}
    names = content_models()
    if not names:
        out("content models: none registered here (no ContentScoring model in MODEL_CLASSES)")
    grids = {name: [{**GRIDS.get(name, [{}])[0], **short}] for name in names}
    rows = []
    start = time.perf_counter()
    frame = run_new_items_leaderboard(
        interactions,
        catalogue.items,
        catalogue,
        [*names, "popularity"],
        k,
        seed,
        share,
        grids=grids,
        log=lambda row, data: out(f"  new-items {row['model']}: ndcg@{k} {_fmt(row, k)}"),
    )
    out(f"new-items leaderboard: {time.perf_counter() - start:.1f} s")
    for row in frame.to_dict("records"):
        rows.append({"protocol": "new-items", **row})
    missing = lightfm_missing()
    if missing:
        out(missing)
    else:
        s = split_new_items(interactions, share, seed)
        content = catalogue.content(s.item_ids)
        variants = [(False, False), (True, False)] + ([(False, True)] if lightfm_cells else [])
        for identity, cells in variants:
            row = lightfm_row(s, content, k, seed, lightfm_epochs, identity, cells=cells)
            out(f"  new-items {row['model']}: ndcg@{k} {_fmt(row, k)}")
            rows.append({"protocol": "new-items", **row})
    if warm:
        rows += warm_rows(interactions, catalogue, k, seed, short, out)
    return pd.DataFrame(rows)


def warm_rows(
    interactions: pd.DataFrame,
    catalogue: CatalogueContent,
    k: int,
    seed: int,
    short: dict,
    out: Any,
) -> list[dict]:
    """two_tower under the ``random`` protocol with its content and without."""
    fields = MODEL_CLASSES["two_tower"].settings_class.model_fields
    if "use_content" not in fields:
        out("warm: two_tower has no use_content setting here; its comparison is skipped")
        return []
    data = prepare(
        interactions, catalogue.items, "random", seed, catalogue=catalogue, models=["two_tower"]
    )
    base = {**GRIDS["two_tower"][0], **short}
    rows = []
    for use_content in (True, False):
        row = evaluate_model("two_tower", data, k, [{**base, "use_content": use_content}], seed)
        row["model"] = f"two_tower (use_content={str(use_content).lower()})"
        out(f"  warm {row['model']}: ndcg@{k} {_fmt(row, k)}")
        rows.append({"protocol": "random (warm)", **row})
    return rows


def _fmt(row: dict, k: int) -> str:
    value = row.get(f"test_ndcg@{k}")
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def report(frame: pd.DataFrame, k: int = 10) -> str:
    """The benchmark's table: NDCG@k, its ratio to random and to LightFM (within the
    protocol), and each row's fit and scoring seconds."""
    column = f"test_ndcg@{k}"
    lines = [
        f"{'protocol':<14} {'model':<30} {'inputs':<15} {'ndcg@' + str(k):>8} "
        f"{'x random':>9} {'x lightfm':>10} {'epochs':>6} {'seconds':>8}  note"
    ]
    for protocol, group in frame.groupby("protocol", sort=False):
        by_model = dict(zip(group["model"], group[column], strict=True))
        for row in group.to_dict("records"):
            value = row[column]
            seconds = float(row.get("train_seconds") or 0) + float(row.get("scoring_seconds") or 0)
            lines.append(
                f"{protocol:<14} {row['model']:<30} {row.get('inputs', '-')!s:<15} "
                f"{_number(value):>8} {_ratio(value, by_model.get('random')):>9} "
                f"{_ratio(value, by_model.get(LIGHTFM_REFERENCE)):>10} "
                f"{_epochs(row.get('epochs')):>6} {seconds:>8.1f}  "
                f"{_note(row.get('note'))}"
            )
    warm = dict(zip(frame["model"], frame[column], strict=True))
    with_content = warm.get("two_tower (use_content=true)")
    without = warm.get("two_tower (use_content=false)")
    if with_content is not None and without:
        lines.append(
            f"warm: two_tower with content / without = {with_content / without:.3f} "
            f"({with_content / without - 1:+.1%} NDCG@{k})"
        )
    return "\n".join(lines)


def _epochs(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(int(value))


def _note(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.4f}")
    )


def _ratio(value: Any, reference: Any) -> str:
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (value, reference)):
        return "-"
    return f"{value / reference:.2f}x" if reference else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench.new_items", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dataset", choices=["ml-100k", "ml-1m", "gowalla"])
    parser.add_argument(
        "--path", type=Path, required=True, help="the MovieLens folder, or the Gowalla folder"
    )
    parser.add_argument(
        "--users", type=int, default=None, help="a seeded sample of this many users (all events)"
    )
    parser.add_argument(
        "--min-events", type=int, default=1, help="only users with this many distinct items"
    )
    parser.add_argument(
        "--no-lightfm-cells",
        action="store_true",
        help="gowalla: skip LightFM on grid cells (coordinates as their unit vector only)",
    )
    parser.add_argument("--share", type=float, default=NEW_ITEMS_SHARE)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None, help="Keras models' epochs")
    parser.add_argument(
        "--lightfm-epochs", type=int, default=100, help="at most; chosen on validation"
    )
    parser.add_argument("--no-warm", action="store_true", help="skip the warm comparison")
    args = parser.parse_args(argv)
    if args.dataset == "gowalla":
        interactions, catalogue = gowalla(args.path)
    else:
        interactions, catalogue = movielens(args.path, args.dataset)
    if args.users is not None or args.min_events > 1:
        interactions, line = sample_users(interactions, args.users, args.min_events, args.seed)
        print(line)
    started = time.perf_counter()
    frame = bench(
        interactions,
        catalogue,
        args.k,
        args.seed,
        args.share,
        args.epochs,
        args.lightfm_epochs,
        warm=not args.no_warm,
        lightfm_cells=args.dataset == "gowalla" and not args.no_lightfm_cells,
    )
    print(report(frame, args.k))
    print(f"total: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
