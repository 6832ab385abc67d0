"""``recpipe model list | promote | rollback``: the registered model and its champion alias."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from flows.cli.context import load

app = typer.Typer(
    help="The registered model and its champion alias.",
    no_args_is_help=True,
)


def _registry(ctx: typer.Context) -> tuple[Any, str]:
    """The MLflow client of the workspace and the registered model's name (checked)."""
    config = load(ctx, existing=True)
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
    return client, name


def decision(model: str, tags: dict[str, str], baseline: str) -> str:
    """What the nightly gate decided about a version. Only the night's challenger carries
    a decision (``promotion.decision``: promoted, kept or rejected); every model of the night
    is registered, so the others are the baseline or models that were not the challenger."""
    if tags.get("promotion.decision"):
        if tags["promotion.decision"] == "promoted" and tags.get("champion.alias_left"):
            return "promoted for an older date (backfill): the alias stayed"
        return tags["promotion.decision"]
    if model == baseline:
        return "baseline"
    return "not challenger" if model else ""


def champion_note(tags: dict[str, str]) -> str:
    """How the champion got there when it was not the gate (a rollback or by hand)."""
    reason = tags.get("champion.reason", "")
    by = tags.get("champion.by")
    if by == "rollback" or (
        by is None and tags.get("champion.rolled_back_at") and reason.startswith("rollback")
    ):
        return f"champion by {reason}"
    if by == "hand":
        return f"champion by hand: {reason}"
    if by is None and reason and reason != tags.get("promotion.reason", "")[:5000]:
        return f"champion by hand: {reason}"  # a version moved before champion.by existed
    return ""


def evidence(tags: dict[str, str]) -> str:
    """The gate's interval of (challenger - champion or popularity) and its p-value."""
    if not tags.get("promotion.ci_low"):
        return ""
    low, high = float(tags["promotion.ci_low"]), float(tags["promotion.ci_high"])
    against = tags.get("promotion.compared_with", "")
    return f"vs {against} [{low:+.4f}, {high:+.4f}] p={float(tags['promotion.p_value']):.3f}"


@app.command("list")
def list_versions(ctx: typer.Context) -> None:
    """List registered versions; * marks the champion."""
    from flows.cli.output import show, table
    from models import declared_inputs
    from tasks.promote import BASELINE
    from tasks.tracking import registry

    client, name = _registry(ctx)
    rows = table(
        "",
        ">version",
        "model",
        "inputs",
        "created (UTC)",
        ">ndcg@10",
        ">users",
        "interval, p",
        "~decision",
    )
    for v in registry.list_versions(client, name):
        ndcg = v.tags.get("ndcg_at_10", "")
        why = decision(v.model, v.tags, BASELINE)
        note = champion_note(v.tags) if v.is_champion else ""
        rows.add_row(
            "*" if v.is_champion else "",
            v.version,
            v.model,
            v.tags.get("inputs") or declared_inputs(v.model),
            v.created,
            f"{float(ndcg):.4f}" if ndcg else "",
            v.tags.get("promotion.n_users", ""),
            evidence(v.tags),
            f"{why}; {note}" if note else why,
        )
    show(rows, f"champion history: {registry.champion_history(client, name)}")


@app.command()
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="registered model version number")],
    reason: Annotated[
        str, typer.Option("--reason", help="recorded with the change")
    ] = "manual promotion",
) -> None:
    """Make VERSION the champion (recorded)."""
    from tasks.tracking import registry

    client, name = _registry(ctx)
    registry.set_champion(client, name, version, reason, by="hand")
    print(f"{name}: champion is now version {version}")


@app.command()
def rollback(ctx: typer.Context) -> None:
    """Return the champion to the previous one (recorded)."""
    from tasks.tracking import registry

    client, name = _registry(ctx)
    came_from, went_to = registry.rollback(client, name)
    print(f"{name}: champion rolled back from version {came_from} to version {went_to}")
