"""``recpipe bench scoring | growth | rerun | publish-faults | refresh | ann |
ease-forms | social | new-items``: benchmarks that print their figures (flows/bench/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from flows.cli.context import load, parse_date, state
from flows.cli.options import RUN_OPTIONS, split_models, with_options

app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)


@app.command()
def scoring(
    users: Annotated[int, typer.Option("--users")] = 100_000,
    items: Annotated[int, typer.Option("--items")] = 20_000,
    dim: Annotated[int, typer.Option("--dim")] = 64,
    k: Annotated[int, typer.Option("--k")] = 10,
    batch: Annotated[int, typer.Option("--batch", help="users per block")] = 2048,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: SQLite)")
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain/--no-explain",
            help="reasons and similar items, as the nightly (on by default, as score.explain)",
        ),
    ] = True,
    shard_rows: Annotated[
        int, typer.Option("--shard-rows", help="interactions per user shard")
    ] = 1_000_000,
) -> None:
    """The nightly's scoring and publishing (explanations, timestamps, the item catalog,
    model loading) vs a bare numpy matmul + in-place top-k, same blocks."""
    from flows.bench.scoring import benchmark, report

    result = benchmark(
        users,
        items,
        dim,
        k,
        batch,
        database_url=database_url,
        explain=explain,
        shard_rows=shard_rows,
    )
    print(report(result))


@app.command()
def growth(
    ctx: typer.Context,
    sizes: Annotated[
        str, typer.Option("--sizes", help="interactions per run, e.g. 1M,5M,20M,50M")
    ] = "1M,5M,20M,50M",
    models: Annotated[
        str, typer.Option("--models", help="models to train (the champion's type)")
    ] = "ease",
    items: Annotated[
        str,
        typer.Option(
            "--items",
            help="catalogue size, fixed across --sizes; or several (e.g. 10k,100k,1M) at "
            "one --sizes value: one night per catalogue size",
        ),
    ] = "20000",
    events_per_user: Annotated[
        int, typer.Option("--events-per-user", help="users = interactions / this")
    ] = 50,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="folder for the generated logs, reused across runs "
            "(default: <workspace>/scale-data)",
        ),
    ] = None,
    runner: Annotated[Literal["local", "dask"], typer.Option("--runner")] = "local",
    ann_users: Annotated[
        int,
        typer.Option(
            "--ann-users",
            help="items axis: users sampled for the item index's recall against exact "
            "ranking after each catalogue's night (0: not measured)",
        ),
    ] = 2000,
) -> None:
    """The nightly flow at growing sizes of synthetic data (interactions, or the catalogue
    with --items 10k,100k,1M): per-stage time and memory."""
    import tempfile

    from flows.bench.growth import (
        MIN_ITEMS,
        bench_growth,
        growth_runs,
        items_report,
        parse_sizes,
        report,
    )
    from tasks.errors import ConfigError

    try:
        parsed = parse_sizes(sizes)
    except ValueError as exc:
        raise ConfigError(f"--sizes: {exc}") from None
    try:
        catalogues = parse_sizes(items, "items", MIN_ITEMS)
    except ValueError as exc:
        raise ConfigError(f"--items: {exc}") from None
    try:
        growth_runs(parsed, catalogues)
    except ValueError as exc:
        raise ConfigError(f"--sizes and --items: {exc}") from None
    names = split_models(models)

    def show(so_far: list[dict]) -> None:
        if len(catalogues) > 1:
            print(items_report(so_far, names, parsed[0]) + "\n", flush=True)
        else:
            print(report(so_far, names, catalogues[0]) + "\n", flush=True)

    root = state(ctx).workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-growth-"))
    results = bench_growth(
        parsed,
        names,
        (data or root / "scale-data").expanduser().resolve(),
        root.expanduser().resolve(),
        catalogues,
        events_per_user,
        overrides={"runner": {"kind": runner}},
        progress=show,
        ann_users=ann_users if len(catalogues) > 1 else 0,
    )
    if any("failed" in r for r in results):
        raise typer.Exit(1)


@app.command()
@with_options(RUN_OPTIONS)
def rerun(
    ctx: typer.Context,
    run_date: Annotated[str, typer.Option("--run-date", help="YYYY-MM-DD")] = "2026-03-02",
    *,
    options: dict[str, Any],
) -> None:
    """A cold run, a cached re-run and a cached re-run with --retrain, on unchanged demo data."""
    import tempfile

    workspace = state(ctx).workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-rerun-"))
    config = load(ctx, options, workspace=workspace)
    day = parse_date(run_date, "--run-date")
    from flows.bench.rerun import bench_report, bench_rerun
    from flows.cli.progress import stage_progress

    with stage_progress("recpipe bench rerun"):
        runs = bench_rerun(config, day)
    print(bench_report(runs, config))


@app.command("publish-faults")
def publish_faults(
    ctx: typer.Context,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            envvar="RECPIPE_TEST_POSTGRES_URL",
            help="also run the matrix against this PostgreSQL database",
        ),
    ] = None,
    users: Annotated[int, typer.Option("--users", help="users per published night")] = 2000,
    flow: Annotated[
        bool,
        typer.Option(
            "--flow",
            help="also kill real 'recpipe run' processes while they score and publish (~5 min)",
        ),
    ] = False,
) -> None:
    """Kill -9 a publishing process at every step, per store; print the damage (all 0s)."""
    import tempfile
    import time

    from flows.bench.publish_faults import matrix, race, report

    base = state(ctx).workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    urls = [None] + ([postgres_url] if postgres_url else [])
    start = time.perf_counter()
    rows = matrix(urls, users, base)
    races = [race(base, url, users) for url in urls]
    print(report(rows, races, time.perf_counter() - start))
    bad = sum(r["rows lost"] + r["torn"] + r["disagree"] + r["leftovers"] for r in rows)
    bad += sum(r["failed runs"] + r["tables missing rows"] + r["leftovers"] for r in races)
    if flow:
        from flows.bench import flow_faults

        start = time.perf_counter()
        folder = base / "flow"
        folder.mkdir(exist_ok=True)
        first = flow_faults.base_workspace(folder)
        cases = [flow_faults.kill_case(first, folder, point) for point in flow_faults.POINTS]
        print()
        print(flow_faults.report(cases, time.perf_counter() - start))
        bad += sum(
            r["rows lost"]
            + r["alias moved before commit"]
            + r["orphans"]
            + r["disagree"]
            + r["leftovers"]
            + (r["next run"] != "ok")
            + (not r["killed"])
            for r in cases
        )
    if bad:
        raise typer.Exit(1)


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    users: Annotated[int, typer.Option("--users", help="users with new events")] = 1000,
    events_per_user: Annotated[
        int, typer.Option("--events-per-user", help="new events per user")
    ] = 3,
    cli: Annotated[
        bool, typer.Option("--cli/--no-cli", help="also time 'recpipe refresh' as a new process")
    ] = True,
) -> None:
    """New events for N users of the demo workspace, refreshed end to end (flow and CLI)."""
    import tempfile

    from flows.bench.refresh import bench_refresh, report
    from flows.cli.refresh import with_refresh_options

    workspace = state(ctx).workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-refresh-"))
    config = load(ctx, {}, workspace=workspace)
    landing = Path(config.refresh.path or Path(config.workspace) / "landing")
    landing.mkdir(parents=True, exist_ok=True)
    config = with_refresh_options(config, landing, None, None)
    print(report(bench_refresh(config, users, events_per_user, cli, state(ctx).config)))


@app.command("ann")
def ann(
    path: Annotated[Path, typer.Option("--path", help="interactions (Parquet file or folder)")],
    model: Annotated[Literal["als", "bpr"], typer.Option("--model")] = "als",
    users: Annotated[int, typer.Option("--users", help="users sampled")] = 2000,
    k: Annotated[int, typer.Option("--k")] = 10,
    limit: Annotated[
        int | None, typer.Option("--limit", help="read only the first N interactions")
    ] = None,
) -> None:
    """A factor model ranked through its HNSW item index vs exactly: recall@k, times."""
    from flows.bench.ann import bench_ann, report

    print(report(bench_ann(path, model, users, k, limit)))


def _numbers(text: str, option: str, kind: type) -> list:
    from tasks.errors import ConfigError

    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"{option}: expected positive numbers separated by commas, got {text!r}")
    return values


@app.command("ease-forms")
def ease_forms(
    dataset: Annotated[
        str,
        typer.Argument(
            help="ml-100k, gowalla, or a path: a MovieLens 100K or Gowalla folder, "
            "or a CSV / TSV / Parquet file"
        ),
    ],
    l2: Annotated[
        str, typer.Option("--l2", help="dense EASE's l2 grid; the best one runs sparse")
    ] = "100,200,500,1000",
    neighbors: Annotated[
        str, typer.Option("--neighbors", help="sparse EASE's neighbour counts")
    ] = "32,64,128,256",
    similarity: Annotated[
        Literal["cosine", "gram"], typer.Option("--similarity", help="how neighbours are ranked")
    ] = "cosine",
    seed: Annotated[int, typer.Option("--seed", help="the split's seed")] = 42,
    user_col: Annotated[str, typer.Option("--user-col", help="a file's user column")] = "user_id",
    item_col: Annotated[str, typer.Option("--item-col", help="a file's item column")] = "item_id",
    datasets: Annotated[
        Path | None, typer.Option("--datasets", help="where dataset names are looked up")
    ] = None,
    dense: Annotated[
        bool,
        typer.Option(
            "--dense/--no-dense",
            help="fit the dense form; --no-dense: the sparse form alone at one --l2 "
            "(a catalog too wide for the dense inverse)",
        ),
    ] = True,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="also write the figures to this JSON file")
    ] = None,
) -> None:
    """Dense and sparse EASE on one dataset and one per-user 80/20 split: l2 tuned for the
    dense form, the sparse form at that l2 for each neighbour count; NDCG@10, Recall@10,
    fit time and peak memory."""
    import json

    from flows.bench.ease_forms import (
        DATASETS,
        HEADER,
        as_json,
        binary_matrix,
        compare,
        describe,
        load_interactions,
        report,
        row_line,
        split_per_user,
    )

    l2s = _numbers(l2, "--l2", float)
    counts = _numbers(neighbors, "--neighbors", int)
    if not dense and len(l2s) != 1:
        from tasks.errors import ConfigError

        raise ConfigError(f"--no-dense runs the sparse form at one --l2; got {l2!r}")
    frame = load_interactions(dataset, user_col, item_col, datasets or DATASETS)
    train, test = split_per_user(binary_matrix(frame), seed=seed)
    info = describe(dataset, train, test, seed)
    print(
        f"{dataset}: {info['users']:,} users, {info['items']:,} items, "
        f"{info['train_interactions']:,} train / {info['test_interactions']:,} test "
        f"interactions ({info['test_users']:,} test users), seed {seed}",
        flush=True,
    )
    print(HEADER, flush=True)
    rows = compare(
        train,
        test,
        l2s,
        counts,
        similarity,
        progress=lambda r: print(row_line(r), flush=True),
        dense=dense,
    )
    print()
    print(report(rows))
    if json_path is not None:
        json_path.write_text(json.dumps(as_json(info, rows), indent=1) + "\n")


@app.command("social")
def social(
    path: Annotated[
        Path,
        typer.Option("--path", help="a folder with checkins.tsv and friends.tsv (Gowalla's)"),
    ] = Path("gowalla"),
    models: Annotated[
        str, typer.Option("--models", help="models to compare, separated by commas")
    ] = "popularity,item_knn,ease,als,mult_dae,social_pop,social_gcn",
    seed: Annotated[int, typer.Option("--seed", help="the split's seed")] = 42,
    val_users: Annotated[
        int, typer.Option("--val-users", help="validation users the Keras models stop early on")
    ] = 3000,
    cornac: Annotated[
        bool,
        typer.Option(
            "--cornac/--no-cornac",
            help="also measure Cornac's SBPR (pip install cornac; not a recpipe dependency)",
        ),
    ] = False,
) -> None:
    """Social and non-social models on one random per-user 80/10/10 split: settings
    chosen and early stopping on validation, NDCG@10 and Recall@10 on test, overall and
    for cold users (at most 5 training items, at least one friend)."""
    from flows.bench.social import bench_social, report

    names = [n.strip() for n in models.split(",") if n.strip()]
    rows = bench_social(
        path, names, seed, val_users, cornac, progress=lambda line: print(line, flush=True)
    )
    print()
    print(report(rows))


@app.command("new-items")
def new_items(
    dataset: Annotated[Literal["ml-100k", "ml-1m"], typer.Argument(help="a MovieLens release")],
    path: Annotated[Path, typer.Option("--path", help="the MovieLens folder (or .zip)")],
    share: Annotated[float, typer.Option("--share", help="the share of items held out")] = 0.2,
    k: Annotated[int, typer.Option("--k")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="split and model seed")] = 42,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="the Keras models' epochs (default: theirs)")
    ] = None,
    lightfm_epochs: Annotated[
        int, typer.Option("--lightfm-epochs", help="LightFM's epochs at most (chosen on valid)")
    ] = 100,
    warm: Annotated[
        bool, typer.Option("--warm/--no-warm", help="also two_tower with and without content")
    ] = True,
) -> None:
    """New items ranked by content (20% of the items held out with all their events): the
    content models, LightFM WARP on the same features, popularity and random; then
    two_tower with and without content on the warm protocol. NDCG@K and ratios."""
    argv = [dataset, "--path", str(path), "--share", str(share), "--k", str(k)]
    argv += ["--seed", str(seed), "--lightfm-epochs", str(lightfm_epochs)]
    argv += ["--epochs", str(epochs)] if epochs else []
    argv += [] if warm else ["--no-warm"]
    from flows.bench.new_items import main

    main(argv)
