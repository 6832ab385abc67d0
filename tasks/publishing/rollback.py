"""What a rollback publishes again: the newest earlier version of a date in the lake that
holds another run's rows, read back table by table, their ``run_id`` included."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tasks.errors import PublishError
from tasks.publishing.stores import Output, Stores
from tasks.storage import lake


def previous_version(stores: Stores, run_date: date, main: str) -> dict:
    """The lake commit of ``run_date`` in table ``main`` to go back to (``version``,
    ``publish_id``, ``source_run_id``): the newest earlier commit of that date that holds
    rows of another run than the current one."""
    commits = lake.history(stores.lake(main), run_date)
    if not commits:
        raise PublishError(
            f"table {main!r} has no published version of {run_date} in the lake "
            f"({stores.lake(main)}); nothing to roll back; 'recpipe recs dates' lists what "
            "is published"
        )
    current = commits[0]
    earlier = [c for c in commits[1:] if c["source_run_id"] != current["source_run_id"]]
    if not earlier:
        raise PublishError(
            f"{run_date} has only been published by run {current['source_run_id']} (lake "
            f"versions {[c['version'] for c in commits]}); there is no previous version to "
            "roll back to; the lake keeps versions for publish.lake_retention_hours"
        )
    return earlier[0]


def restored_outputs(
    stores: Stores, run_date: date, tables: list[tuple[str, str]], target: dict, folder: Path
) -> list[Output]:
    """The rows the publish of ``target`` wrote for ``run_date`` in each of ``tables``
    (``(name, kind)``), each written to a Parquet file in ``folder``."""
    outputs = []
    for name, kind in tables:
        match = [
            c
            for c in lake.history(stores.lake(name), run_date)
            if c["publish_id"] == target["publish_id"]
        ]
        if not match:
            continue  # this table was not part of that publish: it stays as it is
        frame = lake.read_table(stores.lake(name), run_date, version=match[0]["version"])
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        outputs.append(Output(name, kind, path))
    return outputs
