"""``recpipe generate``: a synthetic interaction log of any size, to Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def generate(
    out: Annotated[Path, typer.Argument(help="new or empty folder to write into")],
    interactions: Annotated[
        str, typer.Option("--interactions", help="rows, e.g. 5M, 250k, 50000000")
    ] = "1M",
    users: Annotated[int | None, typer.Option("--users", help="default: interactions / 50")] = None,
    items: Annotated[
        int | None, typer.Option("--items", help="default: interactions / 1000")
    ] = None,
    end: Annotated[str, typer.Option("--end", help="date of the newest events")] = "2026-01-01",
    weeks: Annotated[int, typer.Option("--weeks", help="weeks of events before --end")] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 42,
) -> None:
    """Write a synthetic interaction log of any size to Parquet (streamed, bounded memory)."""
    from flows.bench.growth import parse_size
    from tasks.errors import ConfigError
    from tasks.sources.scale import generate_scale

    try:
        n = parse_size(interactions)
        made = generate_scale(
            out.expanduser(), n, n_users=users, n_items=items, weeks=weeks, seed=seed, end=end
        )
    except (ValueError, FileExistsError) as exc:
        raise ConfigError(str(exc)) from None
    print(
        f"wrote {made['n_interactions']:,} interactions ({made['n_users']:,} users, "
        f"{made['n_items']:,} items) in {made['seconds']:.1f} s\n"
        f"  interactions  {made['interactions_path']}\n  items         {made['items_path']}\n"
        f"run it: recpipe run --source files --path {made['interactions_path']} "
        f"--items-path {made['items_path']} --run-date {end}"
    )
