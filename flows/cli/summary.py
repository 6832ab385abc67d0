"""What a finished night prints: ``recpipe run`` (the flow's returned summary), ``backfill``
(one line per date) and ``trigger --wait`` (the summary the flow stored on the server)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def tool(name: str) -> str:
    """How to call console script ``name`` of this installation: ``.venv/bin/mlflow`` when
    recpipe runs from a virtual environment (relative to the current folder when it is
    inside it), the bare name otherwise."""
    if sys.prefix == sys.base_prefix:
        return name
    script = Path(sys.executable).parent / name
    try:
        return os.path.relpath(script) if script.is_relative_to(Path.cwd()) else str(script)
    except (OSError, ValueError):
        return str(script)


def print_summary(summary: dict) -> None:
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
        f"{v.get('rows_quarantined')} quarantined + "
        f"{v.get('duplicates_dropped')} duplicates dropped"
    )
    out(f"\ndata (source {summary['ingest'].get('source')}):")
    for line in str(accounting).splitlines():
        out(f"  {line}")
    for note in ingest_notes(summary["ingest"].get("stats") or {}):
        out(f"  {note}")
    if summary.get("without_time"):  # stamped at ingest: an age would say nothing
        out(f"  {summary['without_time']}")
    else:
        out(f"  data age: {data_age(summary)}")
    holdout = (summary.get("features") or {}).get("holdout")
    if holdout:
        from tasks.data.holdout import measured_description

        out(
            f"  hold-out: {holdout.get('users')} users with history, {holdout.get('events')} "
            f"events: {measured_description(holdout)}"
        )
    out("\nmodels (hold-out):")
    intervals = (summary.get("promotion") or {}).get("intervals") or {}
    for m in summary["models"]:
        metrics = "  ".join(
            f"{k}={v:.4f}"
            for k, v in m["metrics"].items()
            if "@" in k and not k.startswith("new_items_")
        )
        low_high = intervals.get(m["model"])
        ci = f" [{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else ""
        reads = m.get("inputs", "-")
        also = f"  reads {reads}" if reads != "-" else ""
        out(
            f"  {m['model']:<12} {metrics}  users={m['metrics'].get('n_users')}  "
            f"train={m['train_seconds']:.1f}s{also}"
        )
        if ci:
            primary = (summary.get("promotion") or {}).get("metric", "")
            out(f"  {'':<12} {primary} interval{ci}")
        new = new_items_line(m["metrics"])
        if new:
            out(f"  {'':<12} {new}")
    c = summary["promotion"]
    from tasks.promote import outcome

    verdict = {"kept": "KEPT", "promoted": "PROMOTED", "rejected": "not promoted"}.get(
        outcome(c), outcome(c).upper()
    )
    out(
        f"\npromotion: challenger {c['challenger']} v{c['challenger_version']} "
        f"{verdict}: {c['reason']}"
    )
    from tasks.promote import evidence_line

    out(f"  evidence: {evidence_line(c)}")
    if c.get("new_items"):
        reported = ", ".join(f"{m} {v:.4f}" for m, v in sorted(c["new_items"].items()))
        out(f"  on new items (reported, not decided on): {reported}")
    s, p = summary["scoring"], summary["published"]
    alias = f" ({p['champion_outcome']})" if p.get("champion_outcome") else ""
    out(f"champion serving: {c['registered_name']} v{c['champion_version']}{alias}")
    out(f"\nscored {s['users']} users, {s['rows']} rows; by strategy: {s['users_by_strategy']}")
    new = s.get("new_items")
    if new:
        out(
            f"  new items: {new['items']} catalogue items nobody has interacted with, ranked "
            f"by {new['model']} from their content; the last {new['slots']} rows of the "
            f"lists of {s.get('new_item_users', 0)} users"
        )
    if s.get("plan_seconds") is not None:
        similarity = "read from the cache" if s.get("similarity_cached") else "summed"
        out(f"  planned in {s['plan_seconds']:.2f} s (item-item similarity {similarity})")
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
    out(
        f"  MLflow dashboard           {tool('mlflow')} ui --backend-store-uri "
        f"{summary['mlflow_uri']}"
    )
    if summary.get("mlflow_experiment_id"):
        from tasks.tracking.ui import experiment_url

        page = experiment_url("http://127.0.0.1:5000", summary["mlflow_experiment_id"])
        out(f"    then open                {page}")
    out(f"  workspace                  {summary['workspace']}")


def data_age(summary: dict) -> str:
    """How old the newest event is on the run date (stale data is warned about)."""
    from datetime import date

    last = (summary.get("features") or {}).get("last_event")
    if not last:
        return "unknown"
    newest = date.fromisoformat(str(last)[:10])
    days = (date.fromisoformat(summary["run_date"]) - newest).days
    return f"newest event {newest}, {days} day(s) before the run date"


def print_backfill(rows: list[dict]) -> None:
    print(f"\nbackfill: {len(rows)} date(s)")
    for r in rows:
        if r["status"] == "COMPLETED":
            print(
                f"  {r['run_date']}  COMPLETED  {r['rows']:>8} rows  {r['seconds']:>7.1f} s  "
                f"cached: {r['cached']}  flow run {r['run_id']}"
            )
            if r.get("champion"):
                print(f"  {'':<10}  champion: {r['champion']}")
        else:
            print(f"  {r['run_date']}  {r['status']:<9}  {r.get('error', '')}")


def print_stored_summary(
    markdown: str | None, flow_run_id: str, workspace: str | None = None
) -> None:
    """The summary a flow run stored (artifact ``recpipe-run-summary``, Markdown): rendered
    on a terminal, as Markdown text otherwise; then where its workspace and MLflow store
    are (``workspace``: from the run's parameters, a path on the machine that ran it)."""
    from flows.cli.output import console, is_terminal

    if not markdown:
        print(
            f"(flow run {flow_run_id} stored no run summary; see 'prefect flow-run inspect "
            f"{flow_run_id}' and its logs)"
        )
    elif is_terminal():
        from rich.markdown import Markdown

        console().print(Markdown(markdown))
    else:
        print(markdown.rstrip("\n"))
    if workspace:
        uri = f"sqlite:///{Path(workspace) / 'mlflow' / 'mlflow.db'}"
        print(f"\nworkspace                  {workspace}  (where the run ran)")
        print(f"MLflow dashboard           {tool('mlflow')} ui --backend-store-uri {uri}")


def ingest_notes(stats: dict) -> list[str]:
    """What reading the source changed without losing a row, said once per run."""
    changed = {
        "ids_unicode_normalized": "ids normalised to Unicode NFC / invisible characters removed",
        "ids_whitespace_stripped": "ids with surrounding whitespace stripped",
        "ids_float_suffix_removed": 'ids written as "<int>.0" read as integers',
    }
    notes = [f"{stats[key]} {what}" for key, what in changed.items() if stats.get(key)]
    notes += timestamp_notes(stats)
    if stats.get("timestamp_zone_assumed"):
        notes.append(f"timestamps: {stats['timestamp_zone_assumed']}")
    return notes


def timestamp_notes(stats: dict) -> list[str]:
    """How the user's files' timestamps were read (``files``/``landing`` sources: the
    form chosen per file and the forms the values had), one line."""
    names = {"s": "epoch seconds", "ms": "epoch milliseconds", "iso": "ISO 8601 text"}
    forms: dict[str, int] = {}
    for per_file in (stats.get("files") or {}).values():
        if isinstance(per_file, dict):
            for kind, n in (per_file.get("timestamp_forms") or {}).items():
                forms[kind] = forms.get(kind, 0) + int(n)
    unit = stats.get("timestamp_unit")
    if not forms or unit is None:
        return []
    if isinstance(unit, dict):
        read = "per file: " + ", ".join(f"{f} {names.get(u, u)}" for f, u in sorted(unit.items()))
    else:
        read = names.get(unit, "each value by its own form (mixed)")
    seen = ", ".join(
        f"{n} {names.get(k, k)}" for k, n in sorted(forms.items(), key=lambda kv: -kv[1]) if n
    )
    return [f"timestamps read as {read} (values: {seen}; --timestamp-unit to force)"]


def new_items_line(metrics: dict) -> str | None:
    """The new-items protocol on the night's hold-out (tasks/evaluate.py
    ``new_items_figures``), when the model was measured on it."""
    if "new_items_users" not in metrics:
        return None
    ndcg = next((k for k in metrics if k.startswith("new_items_ndcg@")), None)
    if ndcg is None:
        return None
    k = ndcg.split("@", 1)[1]
    return (
        f"new items: ndcg@{k}={metrics[ndcg]:.4f} (random "
        f"{metrics.get(f'new_items_random_ndcg@{k}', float('nan')):.4f}) over "
        f"{int(metrics['new_items_items'])} hold-out items with no training event, "
        f"{int(metrics['new_items_users'])} users"
    )
