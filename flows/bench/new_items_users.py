"""The users' attributes on the user side of the two-tower family, measured
(``python -m flows.bench.new_items_users ml-100k --path DIR``).

``two_tower`` and ``content_tower`` fitted with MovieLens' users table (age, gender,
occupation: :func:`tasks.evaluation.catalogue.users_catalogue`) as ``user_content``
and without it (``use_user_content=false``), same seed and settings, under the
new-items protocol (flows/bench/new_items.py) and the warm one (``random``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd

from flows.bench.fitting import evaluate_model, prepare
from flows.bench.grids import GRIDS
from flows.bench.new_items import _fmt, movielens, report, run_new_items_leaderboard
from tasks.evaluation.catalogue import CatalogueContent
from tasks.evaluation.new_items import NEW_ITEMS_SHARE


def movielens_users(path: Path, dataset: str) -> CatalogueContent | None:
    """MovieLens ``dataset``'s users table as attributes (age, gender, occupation; zip
    left out), for ``user_content``; None when the release has no users table."""
    from tasks.config import ContentConfig, MovieLensConfig
    from tasks.evaluation.catalogue import users_catalogue
    from tasks.sources.movielens import load_movielens

    source = f"movielens-{dataset.removeprefix('ml-')}"
    users = load_movielens(source, MovieLensConfig(path=path), path).users
    return users_catalogue(users, ContentConfig())


def user_attribute_rows(
    interactions: pd.DataFrame,
    catalogue: CatalogueContent,
    users: CatalogueContent,
    k: int = 10,
    seed: int = 42,
    share: float = NEW_ITEMS_SHARE,
    short: dict | None = None,
    out: Any = print,
) -> pd.DataFrame:
    """two_tower and content_tower with the users' attributes on the user side and
    without (``use_user_content``), same seed and settings, under the new-items protocol
    and the warm one (``random``); the new-items ``random`` reference row once."""
    names = ["two_tower", "content_tower"]
    rows: list[dict] = []
    for use in (True, False):
        grids = {n: [{**GRIDS[n][0], **(short or {}), "use_user_content": use}] for n in names}
        frame = run_new_items_leaderboard(
            interactions,
            catalogue.items,
            catalogue,
            names,
            k,
            seed,
            share,
            grids=grids,
            users=users,
        )
        for row in frame.to_dict("records"):
            if row["model"] != "random" or use:
                suffix = "" if row["model"] == "random" else f" (users={str(use).lower()})"
                rows.append({"protocol": "new-items", **row, "model": row["model"] + suffix})
                out(f"  new-items {rows[-1]['model']}: ndcg@{k} {_fmt(row, k)}")
    data = prepare(
        interactions,
        catalogue.items,
        "random",
        seed,
        catalogue=catalogue,
        models=names,
        users=users,
    )
    for name in names:
        for use in (True, False):
            grid = [{**GRIDS[name][0], **(short or {}), "use_user_content": use}]
            row = evaluate_model(name, data, k, grid, seed)
            row["model"] = f"{name} (users={str(use).lower()})"
            out(f"  warm {row['model']}: ndcg@{k} {_fmt(row, k)}")
            rows.append({"protocol": "random (warm)", **row})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench.new_items_users", description=__doc__.splitlines()[0]
    )
    parser.add_argument("dataset", choices=["ml-100k", "ml-1m"])
    parser.add_argument("--path", type=Path, required=True, help="the MovieLens folder")
    parser.add_argument("--share", type=float, default=NEW_ITEMS_SHARE)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None, help="Keras models' epochs")
    args = parser.parse_args(argv)
    interactions, catalogue = movielens(args.path, args.dataset)
    users = movielens_users(args.path, args.dataset)
    if users is None:
        parser.error(f"{args.dataset}: the release has no users table with attributes")
    short = {"epochs": args.epochs} if args.epochs else {}
    started = time.perf_counter()
    frame = user_attribute_rows(
        interactions, catalogue, users, args.k, args.seed, args.share, short
    )
    print(report(frame, args.k))
    print(f"total: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
