"""Backfill: the nightly flow for each past date, in date order, as of that date.

Each date is a nightly sub-flow run with ``as_of=True`` (only events before the day after
the date are used) that publishes its own partition. Re-running a date replaces only
that date's rows, and its unchanged stages are skipped (``tasks/storage/cache.py``), so a
backfill can be re-run or resumed at will.
"""

# No `from __future__ import annotations`: Prefect builds the flow's parameter model from
# these annotations, also when it loads this file from a deployment's entrypoint.
from datetime import UTC, date, datetime, timedelta

from prefect import flow, get_run_logger

from tasks.config import PipelineConfig, load_config
from tasks.errors import ConfigError, RecpipeError


class BackfillError(RecpipeError):
    """A date of the backfill failed; earlier dates are published, later ones not run."""


def backfill_dates(start: date, end: date, today: date | None = None) -> list[date]:
    """Every date from ``start`` to ``end`` inclusive; refuses reversed or future ranges."""
    today = today or datetime.now(UTC).date()
    if end < start:
        raise ConfigError(f"backfill: --end {end} is before --start {start}; expected start <= end")
    if end > today:
        raise ConfigError(
            f"backfill: --end {end} is after today ({today}, UTC); a backfill re-runs past "
            "nights; use 'recpipe run' for today"
        )
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def champion_line(summary: dict) -> str:
    """The date's promotion and what the alias did, in a few words."""
    from tasks.promote import outcome

    promotion = summary.get("promotion") or {}
    moved = (summary.get("published") or {}).get("champion_outcome") or ""
    decided = outcome(promotion) if promotion else "-"
    challenger = promotion.get("challenger", "")
    version = promotion.get("challenger_version", "")
    what = f"{challenger} v{version} {decided}" if challenger else decided
    return f"{what}; {moved}" if moved else what


@flow(name="recpipe-backfill", log_prints=True)
def backfill(
    start: date,
    end: date,
    config: PipelineConfig | None = None,
    keep_going: bool = False,
) -> list[dict]:
    """Run the nightly flow as of each date from ``start`` to ``end``; one row per date."""
    from flows.nightly import nightly_flow_for
    from tasks.data.as_of import check_source

    logger = get_run_logger()
    config = config or load_config()
    check_source(config.ingest.source)
    rows: list[dict] = []
    failures: list[str] = []
    for day in backfill_dates(start, end):
        state = nightly_flow_for(config)(config=config, run_date=day, as_of=True, return_state=True)
        if state.is_completed():
            summary = state.result()
            rows.append(
                {
                    "run_date": day.isoformat(),
                    "status": "COMPLETED",
                    "run_id": summary["run_id"],
                    "rows": summary["published"]["rows"],
                    "cached": ",".join(summary["cached_stages"]) or "-",
                    "seconds": summary["total_seconds"],
                    "champion": champion_line(summary),
                }
            )
            continue
        error = state.result(raise_on_failure=False)
        stage = getattr(error, "recpipe_stage", None) or "?"
        rows.append(
            {
                "run_date": day.isoformat(),
                "status": state.type.value,
                "run_id": str(state.state_details.flow_run_id),
                "error": f"stage {stage} failed: {error}",
            }
        )
        failures.append(f"{day}: stage {stage} failed: {error}")
        logger.error("backfill: %s", failures[-1])
        if not keep_going:
            break
    if failures:
        done = [r["run_date"] for r in rows if r["status"] == "COMPLETED"]
        error = BackfillError(
            f"backfill {start}..{end}: {len(failures)} date(s) failed: "
            + " | ".join(failures)
            + f"; published: {', '.join(done) or 'none'}; fix the cause and run the same "
            "command again (a date re-run replaces its own rows; unchanged ingest, validate "
            "and features are skipped)"
        )
        error.rows = rows  # type: ignore[attr-defined]
        raise error
    return rows
