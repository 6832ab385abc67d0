"""``recpipe doctor``: finish or undo interrupted publishes and sweep leftovers."""

from __future__ import annotations

from typing import Any

import typer

from flows.cli.context import load


def publish_stores(ctx: typer.Context) -> tuple[Any, Any]:
    """The config and the publish stores (lake folder, database) of the workspace."""
    from tasks.publishing.stores import Stores
    from tasks.storage.workspace import Workspace

    config = load(ctx, environment=False)
    ws = Workspace.at(config.workspace)
    return config, Stores(ws.root, config.publish.url(ws.database_url))


def doctor(ctx: typer.Context) -> None:
    """Finish or undo interrupted publishes and sweep leftovers, so the stores agree."""
    from tasks.publishing.recovery import recover

    config, stores = publish_stores(ctx)
    done = recover(stores, tables=(config.publish.table, config.publish.similar_table))
    for item in done:
        print(f"{item['action']}: {item.get('publish_id') or item.get('name')}")
    print(
        f"{len(done)} repair(s); no interrupted publish left"
        if done
        else "nothing to repair: every publish finished and no leftovers were found"
    )
