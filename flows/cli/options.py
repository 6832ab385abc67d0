"""Options shared by several commands, and how they map onto the pipeline config.

``run``, ``backfill``, ``serve`` and ``bench rerun`` take the same run options, ``run``
and ``evaluate`` the same data-source options. Typer reads a command's options from its
signature, so :func:`with_options` adds a group to a command's signature and hands the
values to the command as one dict, ``options``; :func:`overrides` turns that dict into
config overrides (the highest precedence, above TOML and ``RECPIPE__*``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from tasks.sources.names import SourceName

SOURCE_PANEL = "Data source (default: the demo dataset)"
RERUN_PANEL = "Re-runs and concurrency"


def option(name: str, kind: Any, help: str, default: Any = None, **info: Any) -> Any:
    """One keyword-only parameter ``name: Annotated[kind, typer.Option(...)] = default``,
    spelt ``--name-with-dashes`` on the command line."""
    decl = "--" + name.replace("_", "-")
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[kind, typer.Option(decl, help=help, **info)],
    )


source_option = functools.partial(option, rich_help_panel=SOURCE_PANEL)
rerun_option = functools.partial(option, rich_help_panel=RERUN_PANEL)

SOURCE_OPTIONS = (
    source_option(
        "source",
        SourceName | None,
        "demo, movielens-100k, movielens-1m, movielens-20m, movielens-latest-small, "
        "files or landing",
        metavar="NAME",
    ),
    source_option(
        "path",
        Path | None,
        "MovieLens zip or folder; or the user's file/folder; or the landing folder",
    ),
    source_option("sha256", str | None, "expected sha256 of a MovieLens zip"),
    source_option(
        "no_verify", bool, "accept a MovieLens download with no known checksum", default=False
    ),
    *(
        source_option(f"{col}_col", str | None, f"column holding the {col.replace('_', ' ')}")
        for col in ("user", "item")
    ),
    source_option("timestamp_col", str | None, "column holding the timestamp ('none': no time)"),
    *(
        source_option(f"{col}_col", str | None, f"column holding the {col.replace('_', ' ')}")
        for col in ("value", "event_type")
    ),
    source_option(
        "timestamp_unit",
        Literal["auto", "s", "ms", "iso", "mixed"] | None,
        "how timestamps are written (default: detected)",
    ),
    source_option("delimiter", str | None, "CSV delimiter ('tab' for a tab)"),
    source_option("encoding", str | None, "file encoding (default utf-8)"),
    source_option("items_path", Path | None, "item catalog file (files/landing)"),
    source_option("social_path", Path | None, "relations between users: an edges file or folder"),
    source_option("social_user_col", str | None, "edges column holding the user"),
    source_option("social_friend_col", str | None, "edges column holding the friend/followee"),
    source_option("social_weight_col", str | None, "edges column holding the weight (optional)"),
    source_option(
        "social_direction",
        Literal["mutual", "follows"] | None,
        "mutual (friendships, default) or follows (user -> friend only)",
    ),
)

#: ``recpipe refresh``: how the drops' columns and the relations are read, as the
#: nightly reads them (the landing folder is the refresh's own ``--path``)
REFRESH_SOURCE_OPTIONS = tuple(
    p.replace(
        annotation=Annotated[
            p.annotation.__origin__,
            typer.Option(
                *p.annotation.__metadata__[0].param_decls,
                help=p.annotation.__metadata__[0].help,
                rich_help_panel="How the new files and the relations are read",
            ),
        ]
    )
    for p in SOURCE_OPTIONS
    if p.name not in ("source", "path", "sha256", "no_verify", "items_path")
)

RUN_OPTIONS = (
    option("k", int | None, "recommendations per user (score.k)"),
    option("models", str | None, "comma-separated models to train, e.g. popularity,mult_dae"),
    option("epochs", int | None, "Mult-DAE epochs"),
    option("demo_users", int | None, "demo dataset: number of users"),
    option("demo_items", int | None, "demo dataset: number of items"),
    *SOURCE_OPTIONS,
    option(
        "max_event_age_days",
        float | None,
        "stop the run when the newest event is older than this",
    ),
    rerun_option(
        "no_cache", bool, "run every stage even if its inputs are unchanged", default=False
    ),
    rerun_option(
        "retrain",
        bool,
        "train every model again, even one trained for the same date from identical "
        "features, settings and code (which is reused by default)",
        default=False,
    ),
    rerun_option(
        "runner",
        Literal["local", "dask"] | None,
        "where scoring's user shards run: in this process (local) or on Dask (runner.kind)",
    ),
    rerun_option(
        "dask_address",
        str | None,
        "scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (implies --runner dask)",
    ),
    rerun_option(
        "dask_workers",
        int | None,
        "workers of the local Dask cluster started for the run (runner.workers)",
    ),
    rerun_option(
        "lock_wait",
        float | None,
        "seconds to wait for a run of the same date to finish (lock.wait_seconds, 0)",
    ),
)

SCHEDULE_OPTIONS = (
    option("cron", str | None, "cron schedule (schedule.cron, '0 2 * * *')"),
    option("timezone", str | None, "IANA timezone of the cron (schedule.timezone, UTC)"),
    option("deployment", str | None, "deployment name (schedule.deployment)"),
)


def with_options(*groups: tuple[inspect.Parameter, ...]) -> Callable[[Callable], Callable]:
    """Add the options of ``groups`` to a command; it receives their values as ``options``."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        added = [p for group in groups for p in group]
        names = [p.name for p in added]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            options = {name: kwargs.pop(name) for name in names}
            return command(*args, options=options, **kwargs)

        own = [p for p in signature.parameters.values() if p.name != "options"]
        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def split_models(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


def overrides(workspace: Path | None, options: dict[str, Any]) -> dict:
    """Config overrides from the global ``--workspace`` and a command's ``options``."""
    get = options.get
    out: dict = {}
    if workspace is not None:
        out["workspace"] = str(workspace)
    if get("k") is not None:
        out.setdefault("score", {})["k"] = get("k")
    models = get("models")
    if models:
        out.setdefault("train", {})["models"] = split_models(models)
    if get("epochs") is not None:
        out.setdefault("train", {}).setdefault("mult_dae", {})["epochs"] = get("epochs")
    demo = {
        field: get(option)
        for option, field in (("demo_users", "n_users"), ("demo_items", "n_items"))
        if get(option) is not None
    }
    ingest: dict = {"demo": demo} if demo else {}
    source = get("source")
    if source:
        ingest["source"] = source
    files: dict = {}
    movielens: dict = {}
    if get("path") is not None:
        target = movielens if (source or "").startswith("movielens") else files
        target["path"] = str(get("path"))
    if get("sha256"):
        movielens["sha256"] = get("sha256")
    if get("no_verify"):
        movielens["verify"] = False
    for col in ("user", "item", "timestamp", "value", "event_type"):
        if get(f"{col}_col"):
            files[f"{col}_col"] = get(f"{col}_col")
    if get("timestamp_unit"):
        files["timestamp_unit"] = get("timestamp_unit")
    if get("delimiter"):
        files["delimiter"] = "\t" if get("delimiter") in ("tab", "\\t") else get("delimiter")
    if get("encoding"):
        files["encoding"] = get("encoding")
    if get("items_path") is not None:
        files["items_path"] = str(get("items_path"))
    if files:
        ingest["files"] = files
    social = {
        field: str(get(f"social_{field}")) if field == "path" else get(f"social_{field}")
        for field in ("path", "user_col", "friend_col", "weight_col", "direction")
        if get(f"social_{field}") is not None
    }
    if social:
        ingest["social"] = social
    if movielens:
        ingest["movielens"] = movielens
    if ingest:
        out["ingest"] = ingest
    if get("max_event_age_days") is not None:
        out["validate"] = {"max_event_age_days": get("max_event_age_days")}
    if get("no_cache"):
        out.setdefault("cache", {})["enabled"] = False
    if get("retrain"):
        out.setdefault("cache", {})["reuse_models"] = False
    runner: dict = {}
    if get("runner"):
        runner["kind"] = get("runner")
    if get("dask_address"):
        runner.update(kind="dask", address=get("dask_address"))
    if get("dask_workers") is not None:
        runner["workers"] = get("dask_workers")
    if runner:
        out["runner"] = runner
    if get("lock_wait") is not None:
        out["lock"] = {"wait_seconds": get("lock_wait")}
    schedule = {field: get(field) for field in ("cron", "timezone", "deployment") if get(field)}
    if schedule:
        out["schedule"] = schedule
    return out
