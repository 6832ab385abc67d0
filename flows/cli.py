"""The ``recpipe`` command line. Imports stay light until a command runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from flows.environment import prepare_environment


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the interactions come from: shared by ``run`` and ``evaluate``."""
    src = parser.add_argument_group("data source (default: the demo dataset)")
    src.add_argument(
        "--source",
        choices=[
            "demo",
            "movielens-100k",
            "movielens-1m",
            "movielens-20m",
            "movielens-latest-small",
            "files",
            "landing",
        ],
        default=None,
    )
    src.add_argument(
        "--path",
        type=Path,
        default=None,
        help="MovieLens zip or folder; or the user's file/folder; or the landing folder",
    )
    src.add_argument("--sha256", default=None, help="expected sha256 of a MovieLens zip")
    src.add_argument(
        "--no-verify",
        action="store_true",
        help="accept a MovieLens download with no known checksum",
    )
    for col in ("user", "item", "timestamp", "value", "event-type"):
        src.add_argument(
            f"--{col}-col", default=None, help=f"column holding the {col.replace('-', ' ')}"
        )
    src.add_argument("--timestamp-unit", choices=["auto", "s", "ms", "iso", "mixed"], default=None)
    src.add_argument("--delimiter", default=None, help="CSV delimiter ('tab' for a tab)")
    src.add_argument("--encoding", default=None, help="file encoding (default utf-8)")
    src.add_argument(
        "--items-path", type=Path, default=None, help="item catalog file (files/landing)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recpipe",
        description="Nightly batch recommender pipeline (Prefect, Great Expectations, Keras, MLflow).",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="folder holding everything a run writes (default: $RECPIPE_WORKSPACE or ./recpipe-home)",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the nightly flow now, in this process")
    run.add_argument(
        "--run-date", default=None, help="logical date YYYY-MM-DD (default: today, UTC)"
    )
    run.add_argument(
        "--as-of",
        action="store_true",
        help="use only events before the day after the run date (what backfill does)",
    )
    _add_run_options(run)

    backfill = sub.add_parser(
        "backfill", help="run the nightly flow for each past date, as of that date"
    )
    backfill.add_argument("--start", required=True, help="first run date YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last run date YYYY-MM-DD (inclusive)")
    backfill.add_argument(
        "--keep-going", action="store_true", help="go on with later dates when a date fails"
    )
    _add_run_options(backfill)

    serve = sub.add_parser(
        "serve",
        help="register deployment recpipe-nightly with its cron schedule on a Prefect server "
        "(PREFECT_API_URL) and run its flow runs",
    )
    _add_schedule_options(serve)
    _add_run_options(serve)

    trigger = sub.add_parser(
        "trigger", help="start a run of the served deployment now (needs PREFECT_API_URL)"
    )
    trigger.add_argument("--run-date", default=None, help="YYYY-MM-DD (default: today, UTC)")
    trigger.add_argument("--as-of", action="store_true", help="as-of run (see run --as-of)")
    trigger.add_argument("--wait", action="store_true", help="wait for the run to end")
    trigger.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after SECONDS"
    )
    trigger.add_argument("--deployment", default=None, help="deployment name (schedule.deployment)")

    status = sub.add_parser(
        "status", help="the last runs, their states, and the run date the table serves"
    )
    status.add_argument("--limit", type=int, default=10, help="runs to list")
    _add_other_commands(sub)
    return parser


def _add_schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cron", default=None, help="cron schedule (schedule.cron, '0 2 * * *')")
    parser.add_argument(
        "--timezone", default=None, help="IANA timezone of the cron (schedule.timezone, UTC)"
    )
    parser.add_argument("--deployment", default=None, help="deployment name (schedule.deployment)")


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """Options that shape a nightly run (config overrides)."""
    run.add_argument("--k", type=int, default=None, help="recommendations per user (score.k)")
    run.add_argument(
        "--models", default=None, help="comma-separated models to train, e.g. popularity,mult_dae"
    )
    run.add_argument("--epochs", type=int, default=None, help="Mult-DAE epochs")
    run.add_argument("--demo-users", type=int, default=None, help="demo dataset: number of users")
    run.add_argument("--demo-items", type=int, default=None, help="demo dataset: number of items")
    _add_source_arguments(run)
    run.add_argument(
        "--max-event-age-days",
        type=float,
        default=None,
        help="stop the run when the newest event is older than this",
    )
    ops = run.add_argument_group("re-runs and concurrency")
    ops.add_argument(
        "--no-cache", action="store_true", help="run every stage even if its inputs are unchanged"
    )
    ops.add_argument(
        "--retrain",
        action="store_true",
        help=(
            "train every model again, even one trained for the same date from identical "
            "features, settings and code (which is reused by default)"
        ),
    )
    ops.add_argument(
        "--runner",
        choices=["local", "dask"],
        default=None,
        help="where scoring's user shards run: in this process (local) or on Dask (runner.kind)",
    )
    ops.add_argument(
        "--dask-address",
        default=None,
        help="scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (implies --runner dask)",
    )
    ops.add_argument(
        "--dask-workers",
        type=int,
        default=None,
        help="workers of the local Dask cluster started for the run (runner.workers)",
    )
    ops.add_argument(
        "--lock-wait",
        type=float,
        default=None,
        help="seconds to wait for a run of the same date to finish (lock.wait_seconds, 0)",
    )


def _add_other_commands(sub: Any) -> None:
    model = sub.add_parser("model", help="the registered model and its champion alias")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    model_sub.add_parser("list", help="list registered versions; * marks the champion")
    promote = model_sub.add_parser("promote", help="make VERSION the champion (recorded)")
    promote.add_argument("version", help="registered model version number")
    promote.add_argument("--reason", default="manual promotion", help="recorded with the change")
    model_sub.add_parser("rollback", help="return the champion to the previous one (recorded)")

    recs = sub.add_parser("recs", help="read the published recommendation tables")
    recs_sub = recs.add_subparsers(dest="recs_command", required=True)
    show = recs_sub.add_parser("show", help="a user's recommendations with titles and reasons")
    show.add_argument("--user", required=True, help="raw user id, as in the input")
    show.add_argument("--run-date", default=None, help="YYYY-MM-DD (default: the latest)")
    similar = recs_sub.add_parser("similar", help="the items most similar to an item")
    similar.add_argument("--item", required=True, help="raw item id, as in the input")
    similar.add_argument("--run-date", default=None, help="YYYY-MM-DD (default: the latest)")
    rollback = recs_sub.add_parser(
        "rollback",
        help="publish a date's previous version again, in the database and the lake (journaled)",
    )
    rollback.add_argument("--date", required=True, help="run date YYYY-MM-DD")

    sub.add_parser(
        "doctor",
        help="finish or undo interrupted publishes and sweep leftovers, so the stores agree",
    )

    evaluate = sub.add_parser(
        "evaluate", help="train and evaluate models side by side; print and save a leaderboard"
    )
    _add_source_arguments(evaluate)
    evaluate.add_argument(
        "--protocol", choices=["temporal", "leave-last-out", "random"], default="temporal"
    )
    evaluate.add_argument(
        "--models",
        default="popularity,item_knn,ease,mult_dae",
        help="comma-separated model names (see README: Models)",
    )
    evaluate.add_argument("--k", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=42, help="split and model seed")

    generate = sub.add_parser(
        "generate",
        help="write a synthetic interaction log of any size to Parquet (streamed, bounded memory)",
    )
    generate.add_argument("out", type=Path, help="new or empty folder to write into")
    generate.add_argument("--interactions", default="1M", help="rows, e.g. 5M, 250k, 50000000")
    generate.add_argument("--users", type=int, default=None, help="default: interactions / 50")
    generate.add_argument("--items", type=int, default=None, help="default: interactions / 1000")
    generate.add_argument("--end", default="2026-01-01", help="date of the newest events")
    generate.add_argument("--weeks", type=int, default=8, help="weeks of events before --end")
    generate.add_argument("--seed", type=int, default=42)

    bench = sub.add_parser("bench", help="benchmarks that print their figures")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    scoring = bench_sub.add_parser(
        "scoring", help="batch scoring + publishing vs a bare numpy reference, same blocks"
    )
    scoring.add_argument("--users", type=int, default=100_000)
    scoring.add_argument("--items", type=int, default=20_000)
    scoring.add_argument("--dim", type=int, default=64)
    scoring.add_argument("--k", type=int, default=10)
    scoring.add_argument("--batch", type=int, default=2048, help="users per block")
    scoring.add_argument("--database-url", default=None, help="SQLAlchemy URL (default: SQLite)")
    scoring.add_argument("--explain", action="store_true", help="also compute reasons")
    scoring.add_argument(
        "--shard-rows", type=int, default=1_000_000, help="interactions per user shard"
    )
    growth = bench_sub.add_parser(
        "growth",
        help="the nightly flow at growing sizes of synthetic data: per-stage time and memory",
    )
    growth.add_argument(
        "--sizes", default="1M,5M,20M,50M", help="interactions per run, e.g. 1M,5M,20M,50M"
    )
    growth.add_argument("--models", default="ease", help="models to train (the champion's type)")
    growth.add_argument("--items", type=int, default=20_000, help="catalogue size, fixed")
    growth.add_argument(
        "--events-per-user", type=int, default=50, help="users = interactions / this"
    )
    growth.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder for the generated logs, reused across runs (default: <workspace>/scale-data)",
    )
    growth.add_argument("--runner", choices=["local", "dask"], default="local")
    rerun = bench_sub.add_parser(
        "rerun",
        help="a cold run, a cached re-run and a cached re-run with --retrain, on unchanged demo data",
    )
    rerun.add_argument("--run-date", default="2026-03-02", help="YYYY-MM-DD")
    _add_run_options(rerun)
    faults = bench_sub.add_parser(
        "publish-faults",
        help="kill -9 a publishing process at every step, per store; print the damage (all 0s)",
    )
    faults.add_argument(
        "--postgres-url",
        default=os.environ.get("RECPIPE_TEST_POSTGRES_URL"),
        help="also run the matrix against this PostgreSQL database "
        "(default: $RECPIPE_TEST_POSTGRES_URL)",
    )
    faults.add_argument("--users", type=int, default=2000, help="users per published night")
    faults.add_argument(
        "--flow",
        action="store_true",
        help="also kill real 'recpipe run' processes while they score and publish (~5 min)",
    )


def _overrides(args: argparse.Namespace) -> dict:
    out: dict = {}
    if args.workspace is not None:
        out["workspace"] = str(args.workspace)
    if getattr(args, "k", None) is not None:
        out.setdefault("score", {})["k"] = args.k
    if getattr(args, "models", None):
        out.setdefault("train", {})["models"] = [
            m.strip() for m in args.models.split(",") if m.strip()
        ]
    if getattr(args, "epochs", None) is not None:
        out.setdefault("train", {}).setdefault("mult_dae", {})["epochs"] = args.epochs
    demo = {}
    if getattr(args, "demo_users", None) is not None:
        demo["n_users"] = args.demo_users
    if getattr(args, "demo_items", None) is not None:
        demo["n_items"] = args.demo_items
    ingest: dict = {"demo": demo} if demo else {}
    source = getattr(args, "source", None)
    if source:
        ingest["source"] = source
    files: dict = {}
    movielens: dict = {}
    if getattr(args, "path", None) is not None:
        target = movielens if (source or "").startswith("movielens") else files
        target["path"] = str(args.path)
    if getattr(args, "sha256", None):
        movielens["sha256"] = args.sha256
    if getattr(args, "no_verify", False):
        movielens["verify"] = False
    for col in ("user", "item", "timestamp", "value", "event_type"):
        value = getattr(args, f"{col}_col", None)
        if value:
            files[f"{col}_col"] = value
    if getattr(args, "timestamp_unit", None):
        files["timestamp_unit"] = args.timestamp_unit
    if getattr(args, "delimiter", None):
        files["delimiter"] = "\t" if args.delimiter in ("tab", "\\t") else args.delimiter
    if getattr(args, "encoding", None):
        files["encoding"] = args.encoding
    if getattr(args, "items_path", None) is not None:
        files["items_path"] = str(args.items_path)
    if files:
        ingest["files"] = files
    if movielens:
        ingest["movielens"] = movielens
    if ingest:
        out["ingest"] = ingest
    if getattr(args, "max_event_age_days", None) is not None:
        out["validate"] = {"max_event_age_days": args.max_event_age_days}
    if getattr(args, "no_cache", False):
        out.setdefault("cache", {})["enabled"] = False
    if getattr(args, "retrain", False):
        out.setdefault("cache", {})["reuse_models"] = False
    runner = {}
    if getattr(args, "runner", None):
        runner["kind"] = args.runner
    if getattr(args, "dask_address", None):
        runner.update(kind="dask", address=args.dask_address)
    if getattr(args, "dask_workers", None) is not None:
        runner["workers"] = args.dask_workers
    if runner:
        out["runner"] = runner
    if getattr(args, "lock_wait", None) is not None:
        out["lock"] = {"wait_seconds": args.lock_wait}
    schedule = {
        field: getattr(args, field)
        for field in ("cron", "timezone", "deployment")
        if getattr(args, field, None)
    }
    if schedule:
        out["schedule"] = schedule
    return out


def _print_summary(summary: dict) -> None:
    out = print
    out(
        f"\nrecpipe nightly {summary['run_date']} completed in {summary['total_seconds']:.1f} s "
        f"(flow run {summary['run_id']})"
    )
    out("\nstages (seconds):")
    cached = summary.get("cached_stages") or {}
    for stage, seconds in summary["stage_seconds"].items():
        note = "  skipped: inputs unchanged" if stage in cached else ""
        if stage == "train" and any(k.startswith("train-") for k in cached):
            note = "  models reused: " + ", ".join(
                k.removeprefix("train-") for k in cached if k.startswith("train-")
            )
        out(f"  {stage:<10} {seconds:>7.2f}{note}")
    v = summary["validation"]
    accounting = v.get("accounting") or (
        f"{v.get('rows_read')} rows read = {v.get('rows_accepted')} accepted + "
        f"{v.get('rows_quarantined')} quarantined + {v.get('duplicates_dropped')} duplicates dropped"
    )
    out(f"\ndata (source {summary['ingest'].get('source')}):")
    for line in str(accounting).splitlines():
        out(f"  {line}")
    out("\nmodels (validation split):")
    for m in summary["models"]:
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in m["metrics"].items() if "@" in k)
        out(
            f"  {m['model']:<12} {metrics}  users={m['metrics'].get('n_users')}  "
            f"train={m['train_seconds']:.1f}s"
        )
    c = summary["promotion"]
    from tasks.promote import outcome

    verdict = {"kept": "KEPT", "promoted": "PROMOTED", "rejected": "not promoted"}[outcome(c)]
    out(
        f"\npromotion: challenger {c['challenger']} v{c['challenger_version']} {verdict}: {c['reason']}"
    )
    s, p = summary["scoring"], summary["published"]
    alias = f" ({p['champion_outcome']})" if p.get("champion_outcome") else ""
    out(f"champion serving: {c['registered_name']} v{c['champion_version']}{alias}")
    out(f"\nscored {s['users']} users, {s['rows']} rows; by strategy: {s['users_by_strategy']}")
    mon = summary.get("monitor") or {}
    f = mon.get("figures") or {}
    if f:
        drift = (
            f"mean Jaccard {f['mean_jaccard']:.3f}, top-1 changed {f['top1_changed_share']:.3f} "
            f"({f['users_compared']} users) vs {mon.get('previous_run_date')}"
            if f.get("mean_jaccard") is not None
            else "no previous run to compare with"
        )
        out(f"monitor: coverage {f['coverage']:.3f}, Gini {f['gini']:.3f}; {drift}")
        for finding in mon.get("findings") or []:
            out(f"  {finding['level'].upper()}: {finding['message']}")
    out("\nwhere everything landed:")
    out(f"  recommendations (lake)     {p['lake']}  (Delta table, version {p['lake_version']})")
    out(f"  recommendations (database) {p['database']}  table '{p['table']}'")
    out(f"  validation report          {v.get('data_docs_index')}")
    out(f"  quarantine                 {v.get('quarantine_path')}")
    out(f"  MLflow tracking store      {summary['mlflow_uri']}")
    out(f"  MLflow dashboard           mlflow ui --backend-store-uri {summary['mlflow_uri']}")
    out(f"  workspace                  {summary['workspace']}")


def _date(value: str | None, option: str) -> Any:
    """``YYYY-MM-DD`` -> date (None stays None); a clear error otherwise."""
    from datetime import date

    from tasks.errors import ConfigError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date; expected YYYY-MM-DD, e.g. 2026-03-02"
        ) from None


def _config(args: argparse.Namespace, temporary_server: bool = True) -> Any:
    from tasks.config import load_config

    config = load_config(args.config, overrides=_overrides(args))
    prepare_environment(config.workspace, temporary_server=temporary_server)
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    run_date = _date(args.run_date, "--run-date")

    from flows.nightly import nightly_flow_for

    summary = nightly_flow_for(config)(config=config, run_date=run_date, as_of=args.as_of)
    _print_summary(summary)
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    config = _config(args)
    start, end = _date(args.start, "--start"), _date(args.end, "--end")

    from flows.backfill import BackfillError, backfill, backfill_dates
    from tasks.data.as_of import check_source

    backfill_dates(start, end)  # refuse a bad range before starting Prefect
    check_source(config.ingest.source)
    try:
        rows = backfill(start=start, end=end, config=config, keep_going=args.keep_going)
    except BackfillError as exc:
        _print_backfill(getattr(exc, "rows", []))
        raise
    _print_backfill(rows)
    return 0


def _print_backfill(rows: list[dict]) -> None:
    print(f"\nbackfill: {len(rows)} date(s)")
    for r in rows:
        if r["status"] == "COMPLETED":
            print(
                f"  {r['run_date']}  COMPLETED  {r['rows']:>8} rows  {r['seconds']:>7.1f} s  "
                f"cached: {r['cached']}  flow run {r['run_id']}"
            )
        else:
            print(f"  {r['run_date']}  {r['status']:<9}  {r.get('error', '')}")


def _cmd_serve(args: argparse.Namespace) -> int:
    from flows.operate import serve

    serve(_config(args, temporary_server=False))
    return 0


def _cmd_trigger(args: argparse.Namespace) -> int:
    from flows.operate import trigger

    config = _config(args, temporary_server=False)
    flow_run = trigger(
        config, _date(args.run_date, "--run-date"), args.wait, args.timeout, args.as_of
    )
    state = flow_run.state
    print(
        f"flow run {flow_run.name} ({flow_run.id}) of deployment "
        f"recpipe-nightly/{config.schedule.deployment}: {state.name if state else 'created'}"
    )
    if not args.wait:
        print(
            "it runs as soon as 'recpipe serve' (or a worker of the deployment's pool) picks it "
            f"up; follow it with 'recpipe status' or 'prefect flow-run inspect {flow_run.id}'"
        )
        return 0
    if state is not None and state.is_completed():
        return 0
    message = (state.message if state else "") or "no message"
    if state is None or not state.is_final():
        print(
            f"recpipe: still {state.name if state else 'pending'} after --timeout", file=sys.stderr
        )
        return 3
    print(f"recpipe: the run ended {state.name}: {message}", file=sys.stderr)
    return 2


def _cmd_status(args: argparse.Namespace) -> int:
    from flows.status import status

    print(status(_config(args, temporary_server=False), args.limit))
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    from tasks.config import load_config

    config = load_config(args.config, overrides=_overrides(args))
    prepare_environment(config.workspace)
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    if not (config.workspace / "mlflow" / "mlflow.db").is_file():
        raise registry.RegistryError(
            f"no MLflow store in workspace {config.workspace}; run 'recpipe run' first "
            "or check --workspace / RECPIPE_WORKSPACE"
        )
    ws = Workspace.at(config.workspace)
    client = tracking.client_for(ws)
    name = config.tracking.registered_model
    if not registry.model_exists(client, name):
        raise registry.RegistryError(
            f"no registered model {name!r} in {ws.mlflow_uri}; run 'recpipe run' first "
            "or check --workspace"
        )
    if args.model_command == "list":
        print(
            f"{'':1} {'version':>7}  {'model':<12} {'created (UTC)':<16}  {'ndcg@10':>8}  decision"
        )
        for v in registry.list_versions(client, name):
            mark = "*" if v.is_champion else ""
            ndcg = v.tags.get("ndcg_at_10", "")
            ndcg = f"{float(ndcg):.4f}" if ndcg else ""
            print(
                f"{mark:1} {v.version:>7}  {v.model:<12} {v.created:<16}  {ndcg:>8}  "
                f"{v.tags.get('promotion.decision', '')}"
            )
        print(f"champion history: {registry.champion_history(client, name)}")
    elif args.model_command == "promote":
        registry.set_champion(client, name, args.version, args.reason)
        print(f"{name}: champion is now version {args.version}")
    elif args.model_command == "rollback":
        came_from, went_to = registry.rollback(client, name)
        print(f"{name}: champion rolled back from version {came_from} to version {went_to}")
    return 0


def _cmd_recs(args: argparse.Namespace) -> int:
    from datetime import date

    import pandas as pd

    from tasks.config import load_config
    from tasks.storage.lookup import latest_titles, similar_items, user_recommendations
    from tasks.storage.workspace import Workspace

    config = load_config(args.config, overrides=_overrides(args))
    ws = Workspace(config.workspace)
    url = config.publish.database_url or ws.database_url
    run_date = date.fromisoformat(args.run_date) if args.run_date else None
    titles = latest_titles(ws.root / "raw")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 60)
    if args.recs_command == "rollback":
        return _cmd_recs_rollback(args)
    if args.recs_command == "show":
        frame = user_recommendations(url, config.publish.table, args.user, titles, run_date)
        first = frame.iloc[0]
        print(
            f"user {args.user}: run date {first['run_date']}, model {first['model_name']} "
            f"v{first['model_version']}, strategy {first['strategy']}"
        )
        print(frame[["rank", "item_id", "title", "score", "reason"]].to_string(index=False))
    else:
        frame = similar_items(url, config.publish.similar_table, args.item, titles, run_date)
        print(
            f"items similar to {args.item} {titles.get(args.item, '')} "
            f"(run date {frame.iloc[0]['run_date']}):"
        )
        print(frame[["rank", "similar_item_id", "title", "score"]].to_string(index=False))
    return 0


def _publish_stores(args: argparse.Namespace) -> Any:
    from tasks.config import load_config
    from tasks.publish import Stores
    from tasks.storage.workspace import Workspace

    config = load_config(args.config, overrides=_overrides(args))
    ws = Workspace.at(config.workspace)
    return config, Stores(ws.root, config.publish.database_url or ws.database_url)


def _cmd_recs_rollback(args: argparse.Namespace) -> int:
    from tasks.publish import RECOMMENDATIONS, SIMILAR_ITEMS, recover, rollback_date
    from tasks.storage.locks import holder_info, run_lock

    config, stores = _publish_stores(args)
    day = _date(args.date, "--date")
    holder = holder_info("recs-rollback", run_date=day.isoformat(), workspace=str(stores.root))
    with run_lock(stores.root / "locks", day, config.lock.wait_seconds, holder):
        recover(stores, held_date=day, tables=(config.publish.table, config.publish.similar_table))
        result = rollback_date(
            stores,
            day,
            [
                (config.publish.table, RECOMMENDATIONS),
                (config.publish.similar_table, SIMILAR_ITEMS),
            ],
        )
    print(
        f"{day}: back to the rows of run {result['restored_run_id']} (lake version "
        f"{result['from_version']}), {result['rows']} rows in table '{result['table']}' and "
        f"the lake ({result['lake']}); publish {result['publish_id']}"
    )
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from tasks.publish import recover

    config, stores = _publish_stores(args)
    done = recover(stores, tables=(config.publish.table, config.publish.similar_table))
    for item in done:
        print(f"{item['action']}: {item.get('publish_id') or item.get('name')}")
    print(
        f"{len(done)} repair(s); no interrupted publish left"
        if done
        else "nothing to repair: every publish finished and no leftovers were found"
    )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from flows.bench.growth import parse_size
    from tasks.errors import ConfigError
    from tasks.sources.scale import generate_scale

    try:
        n = parse_size(args.interactions)
        out = generate_scale(
            args.out.expanduser(),
            n,
            n_users=args.users,
            n_items=args.items,
            weeks=args.weeks,
            seed=args.seed,
            end=args.end,
        )
    except (ValueError, FileExistsError) as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"wrote {out['n_interactions']:,} interactions ({out['n_users']:,} users, "
        f"{out['n_items']:,} items) in {out['seconds']:.1f} s\n"
        f"  interactions  {out['interactions_path']}\n  items         {out['items_path']}\n"
        f"run it: recpipe run --source files --path {out['interactions_path']} "
        f"--items-path {out['items_path']} --run-date {args.end}"
    )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "rerun":
        return _cmd_bench_rerun(args)
    if args.bench_command == "growth":
        return _cmd_bench_growth(args)
    if args.bench_command == "publish-faults":
        return _cmd_bench_publish_faults(args)
    from flows.bench.scoring import benchmark, report

    result = benchmark(
        args.users,
        args.items,
        args.dim,
        args.k,
        args.batch,
        database_url=args.database_url,
        explain=args.explain,
        shard_rows=args.shard_rows,
    )
    print(report(result))
    return 0


def _cmd_bench_publish_faults(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from flows.bench.publish_faults import matrix, race, report

    base = args.workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    urls = [None] + ([args.postgres_url] if args.postgres_url else [])
    start = time.perf_counter()
    rows = matrix(urls, args.users, base)
    races = [race(base, url, args.users) for url in urls]
    print(report(rows, races, time.perf_counter() - start))
    bad = sum(r["rows lost"] + r["torn"] + r["disagree"] + r["leftovers"] for r in rows)
    bad += sum(r["failed runs"] + r["tables missing rows"] + r["leftovers"] for r in races)
    if args.flow:
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
    return 1 if bad else 0


def _cmd_bench_growth(args: argparse.Namespace) -> int:
    import tempfile

    from flows.bench.growth import bench_growth, parse_size, report
    from tasks.errors import ConfigError

    try:
        sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--sizes: {exc}") from None
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    root = args.workspace or Path(tempfile.mkdtemp(prefix="recpipe-bench-growth-"))
    results = bench_growth(
        sizes,
        models,
        (args.data or root / "scale-data").expanduser().resolve(),
        root.expanduser().resolve(),
        args.items,
        args.events_per_user,
        overrides={"runner": {"kind": args.runner}},
        progress=lambda so_far: print(report(so_far, models, args.items) + "\n", flush=True),
    )
    return 1 if any("failed" in r for r in results) else 0


def _cmd_bench_rerun(args: argparse.Namespace) -> int:
    import tempfile

    if args.workspace is None:
        args.workspace = Path(tempfile.mkdtemp(prefix="recpipe-bench-rerun-"))
    config = _config(args)
    from flows.bench.rerun import bench_report, bench_rerun

    runs = bench_rerun(config, _date(args.run_date, "--run-date"))
    print(bench_report(runs, config))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tasks.config import load_config

    overrides = _overrides(args)
    overrides.pop("score", None)
    overrides.pop("train", None)
    config = load_config(args.config, overrides=overrides)
    prepare_environment(config.workspace)
    from flows.bench.leaderboard import evaluate_source, format_leaderboard

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    frame, csv_path, json_path = evaluate_source(config, args.protocol, models, args.k, args.seed)
    print(
        f"leaderboard: source {config.ingest.source}, protocol {args.protocol}, "
        f"full ranking, K={args.k} (test split, each model tuned on validation)"
    )
    print(format_leaderboard(frame, args.k))
    print(f"\nwritten: {csv_path}\n         {json_path}")
    print(f"MLflow: experiment 'recpipe-evaluate' in {config.workspace / 'mlflow' / 'mlflow.db'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from tasks.errors import RecpipeError

    commands = {
        "run": _cmd_run,
        "backfill": _cmd_backfill,
        "serve": _cmd_serve,
        "trigger": _cmd_trigger,
        "status": _cmd_status,
        "evaluate": _cmd_evaluate,
        "generate": _cmd_generate,
        "doctor": _cmd_doctor,
    }
    try:
        if args.command in commands:
            return commands[args.command](args)
        if args.command == "model":
            return _cmd_model(args)
        if args.command == "recs":
            return _cmd_recs(args)
        if args.command == "bench":
            return _cmd_bench(args)
    except RecpipeError as exc:
        stage = getattr(exc, "recpipe_stage", None)
        what = f"stage {stage} failed" if stage else "error"
        print(f"recpipe: {what}: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
