"""Words for validation outcomes: batch-failure messages and the Markdown summary.

A batch-failure message names the expectation, the observed value, what was expected,
a few sample rows and what to do. The Markdown summary is what the Prefect artifact shows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from expectations.escaping import markdown_text
from expectations.thresholds import Thresholds

SAMPLE_ROWS = 3


def _samples(df: pd.DataFrame, newest_first: bool = False) -> str:
    rows = df
    if newest_first and "timestamp" in df.columns:
        rows = df.sort_values("timestamp", ascending=False, na_position="last")
    records = rows.head(SAMPLE_ROWS).to_dict("records")
    return "; ".join(
        ", ".join(f"{k}={v}" for k, v in r.items() if not str(k).startswith("__")) for r in records
    )


def batch_failure_message(name: str, result: Any, check: str, df: pd.DataFrame, ctx: dict) -> str:
    """The DataValidationError text for a failed batch-level expectation; ``ctx`` holds
    ``limits`` (the Thresholds), ``now``, ``volume`` (the volume floor's figures) and
    ``docs`` (the Data Docs index)."""
    limits, docs = ctx["limits"], ctx["docs"]
    expectation = result.expectation_config.type
    observed = result.result.get("observed_value")
    if isinstance(observed, pd.Timestamp):
        observed = observed.isoformat()
    if check == "min_rows":
        detail = (
            f"observed {observed} rows, at least {limits.min_rows} required (validate.min_rows)"
        )
        todo = "check that ingest read the full source, or lower validate.min_rows"
    elif check == "volume":
        volume = ctx["volume"]
        detail = (
            f"observed {observed} rows, more than {limits.max_volume_drop:.0%} below the "
            f"trailing average {volume['trailing_average']:g} of the previous "
            f"{volume['previous_runs']} runs (at least {volume['floor']} expected; "
            "validate.max_volume_drop)"
        )
        todo = (
            "check that today's source is complete (a missing file, a failed export); if "
            "the drop is real, raise validate.max_volume_drop or set it to none for this run"
        )
    elif check == "stale":
        detail = (
            f"the newest acceptable event is {observed}, older than "
            f"{limits.max_event_age_days:g} days before {ctx['now'].isoformat()} "
            "(validate.max_event_age_days)"
        )
        todo = "check that the source is still being updated, or raise validate.max_event_age_days"
        return (
            f"{name}: {expectation} (stale data) failed: {detail}; newest rows: "
            f"{_samples(df, newest_first=True)}; nothing was written downstream; {todo}; "
            f"Data Docs: {docs}"
        )
    else:
        detail = f"observed {observed} rows; the {name} table must not be empty"
        todo = f"check the {name} file ingest wrote, or leave it out"
    return (
        f"{name}: {expectation} ({check}) failed: {detail}; sample rows: "
        f"{_samples(df) or 'none'}; nothing was written downstream; {todo}; Data Docs: {docs}"
    )


def quarantine_share_message(table: Any, limits: Thresholds, docs: Any) -> str:
    """The DataValidationError text when too many rows were quarantined."""
    share = table.rows_quarantined / table.rows_read
    by_reason = ", ".join(
        f"{reason!r}: {n}"
        for reason, n in sorted(table.reasons.items(), key=lambda kv: -kv[1])[:10]
    )
    return (
        f"interactions: quarantine share {share:.2%} ({table.rows_quarantined} of "
        f"{table.rows_read} rows) is above the threshold {limits.max_quarantine_share:.2%} "
        "(validate.max_quarantine_share); "
        f"reasons: {by_reason}; sample rows: {'; '.join(table.samples)}; nothing was written "
        "downstream; fix the source or the ingest column mapping, or raise "
        f"validate.max_quarantine_share if this is expected; Data Docs: {docs}"
    )


def summary_markdown(
    result: Any, *, summary: dict | None = None, failure: str | None = None
) -> str:
    """Markdown for the Prefect artifact: a passed run's tables, or a failed run's message.

    Reasons, names and messages (whose sample rows quote input values verbatim) go through
    ``markdown_text``: no input renders as HTML, a code span, a link or a table column."""
    if failure is not None:
        return f"# recpipe validation: FAILED\n\nThe batch was rejected:\n\n> {_cell(failure)}\n"
    lines = [
        "# recpipe validation: passed",
        "",
        f"**Accounting**: {_cell(result.accounting)}",
        "",
        "| table | read | accepted | quarantined | duplicates dropped | flagged (kept) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in result.tables:
        lines.append(
            f"| {_cell(t.name)} | {t.rows_read} | {t.rows_accepted} | {t.rows_quarantined} | "
            f"{t.duplicates_dropped} | {sum(t.flagged.values())} |"
        )
    for t in result.tables:
        if t.rows_quarantined:
            title = f"## Quarantine reasons: {_cell(t.name)}"
            lines += ["", title, "", "| reason | rows |", "|---|---:|"]
            counts = sorted(t.reasons.items(), key=lambda kv: -kv[1])[:15]
            lines += [f"| {_cell(reason)} | {n} |" for reason, n in counts]
        if t.flagged:
            title = f"## Flagged and kept: {_cell(t.name)}"
            lines += ["", title, "", "| reason | rows |", "|---|---:|"]
            lines += [f"| {_cell(reason)} | {n} |" for reason, n in t.flagged.items()]
    failed = [(t.name, e) for t in result.tables for e in t.expectations if not e["success"]]
    if failed:
        lines += ["", "## Expectations not met", "", "| table | expectation | column | level |"]
        lines += ["|---|---|---|---|"]
        lines += [
            f"| {_cell(n)} | {_cell(e['expectation'])} | {_cell(e['column'] or '')} | "
            f"{_cell(e['level'])} |"
            for n, e in failed
        ]
    volume = result.volume
    if volume.get("floor") is not None:
        lines += [
            "",
            (
                f"Volume: {volume['rows']} rows; floor {volume['floor']} from the trailing "
                f"average {volume['trailing_average']:g} of {volume['previous_runs']} runs."
            ),
        ]
    if summary and summary.get("history_snapshot"):
        snapshot = _cell(summary["history_snapshot"])
        lines += ["", f"Appended to {snapshot}: {summary['rows_total']} rows."]
    lines += ["", f"Data Docs: {_cell(result.data_docs_index)}", ""]
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return markdown_text(text)
