"""``recpipe refresh``: the intraday refresh now, in this process (flows/refresh.py).

With a Prefect server configured (``PREFECT_API_URL``) it runs as a flow run of
``recpipe-refresh`` reporting to that server. Without one it runs the same steps
(tasks/refresh/run.py) without Prefect, rather than starting a temporary Prefect server
for the run (15-20 s on a small machine, longer than the refresh itself); the summary then
goes to the terminal and the night's MLflow run only. ``--prefect`` forces a flow run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from flows.cli.context import load
from flows.cli.options import REFRESH_SOURCE_OPTIONS, with_options


@with_options(REFRESH_SOURCE_OPTIONS)
def refresh(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path", help="landing folder of new events (refresh.path, else ingest.files.path)"
        ),
    ] = None,
    when_nightly_running: Annotated[
        Literal["wait", "skip"] | None,
        typer.Option(
            "--when-nightly-running",
            help="wait behind a nightly of the date, or skip (refresh.when_nightly_running)",
        ),
    ] = None,
    wait_seconds: Annotated[
        float | None,
        typer.Option("--wait-seconds", help="longest wait behind it (refresh.wait_seconds)"),
    ] = None,
    prefect: Annotated[
        bool | None,
        typer.Option(
            "--prefect/--no-prefect",
            help="run as a Prefect flow run (default: only when PREFECT_API_URL is set)",
        ),
    ] = None,
    *,
    options: dict[str, Any],
) -> None:
    """Re-score the users with new events in the landing folder; publish just their rows.

    The new files' columns are read as the nightly reads its files (the config's
    ingest.files section); the options below override that mapping for this refresh."""
    config = with_refresh_options(load(ctx, options), path, when_nightly_running, wait_seconds)
    warm_imports()
    if prefect is None:
        from prefect.settings import get_current_settings

        prefect = bool(get_current_settings().api.url)
    if prefect:
        from flows.refresh import refresh as refresh_flow

        out = refresh_flow(config=config)
    else:
        out = without_prefect(config)
    print(summary_text(out))
    if out["status"] == "skipped":
        print(f"recpipe: refresh skipped: {out.get('reason')}", file=sys.stderr)


def without_prefect(config: Any) -> dict:
    """The refresh's steps in this process, no Prefect server (see the module docstring)."""
    import logging
    import uuid

    from tasks.refresh.report import log_everywhere
    from tasks.refresh.run import run_refresh

    def waiting(why: str) -> None:
        print(f"refresh: {why}; waiting for it to finish", file=sys.stderr, flush=True)

    out = run_refresh(config, str(uuid.uuid4()), on_wait=waiting)
    log_everywhere(str(config.workspace), config.tracking.experiment, out, logging.getLogger())
    return out


def with_refresh_options(
    config: Any, path: Path | None, when: str | None, wait_seconds: float | None
) -> Any:
    from tasks.config import RefreshConfig

    update = {"path": path, "when_nightly_running": when, "wait_seconds": wait_seconds}
    values = {**config.refresh.model_dump(), **{k: v for k, v in update.items() if v is not None}}
    return config.model_copy(update={"refresh": RefreshConfig(**values)})


def warm_imports() -> None:
    """Import what the refresh needs (Great Expectations, MLflow, the Delta reader) on a
    thread while Prefect starts its temporary server on this one."""
    import threading

    def work() -> None:
        import deltalake  # noqa: F401
        import great_expectations  # noqa: F401
        import mlflow  # noqa: F401

    threading.Thread(target=work, name="recpipe-warm-imports", daemon=True).start()


def summary_text(out: dict) -> str:
    lines = [f"refresh {out['status']} for run date {out.get('run_date', '-')}"]
    if out.get("files") is not None:
        validation = out.get("validation") or {}
        lines.append(
            f"  files read {len(out['files'])}, new events {out.get('events')}, "
            f"validation: {validation.get('accounting')}"
        )
    if out.get("edges"):
        e = out["edges"]
        lines.append(
            f"  relations read again: {e['accounting']}; {e['users_changed']} users' "
            f"relations changed since {e['compared_with']}"
        )
    if out["status"] == "published":
        lines += [
            (
                f"  users refreshed {out['users']} ({out['users_by_strategy']}), "
                f"rows {out['rows']}, "
                f"model {out['model']} v{out['version']}"
            ),
            (
                f"  published {out['refreshed_at']} (publish {out['publish_id']}, lake version "
                f"{out['lake_version']})"
            ),
            (
                f"  seconds: {out['published_seconds']} from the refresh's start to published "
                f"({out['seconds']} with the Data Docs), "
                f"{out.get('arrival_to_published_seconds')} from the newest file's arrival"
            ),
        ]
    for item in out.get("recovered") or []:
        lines.append(f"  recovered: {item['action']} {item['publish_id']}")
    return "\n".join(lines)
