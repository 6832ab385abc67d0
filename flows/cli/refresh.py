"""``recpipe refresh``: the intraday refresh now, in this process (flows/refresh.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from flows.cli.context import load


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
) -> None:
    """Re-score the users with new events in the landing folder; publish just their rows."""
    config = with_refresh_options(load(ctx), path, when_nightly_running, wait_seconds)
    warm_imports()
    from flows.refresh import refresh as refresh_flow

    out = refresh_flow(config=config)
    print(summary_text(out))
    if out["status"] == "skipped":
        print(f"recpipe: refresh skipped: {out.get('reason')}", file=sys.stderr)


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
    if out["status"] == "published":
        lines += [
            (
                f"  users refreshed {out['users']} ({out['users_by_strategy']}), rows {out['rows']}, "
                f"model {out['model']} v{out['version']}"
            ),
            (
                f"  published {out['refreshed_at']} (publish {out['publish_id']}, lake version "
                f"{out['lake_version']})"
            ),
            (
                f"  seconds: {out['seconds']} from flow start, "
                f"{out.get('arrival_to_published_seconds')} from the newest file's arrival"
            ),
        ]
    for item in out.get("recovered") or []:
        lines.append(f"  recovered: {item['action']} {item['publish_id']}")
    return "\n".join(lines)
