"""``recpipe forget``: remove users from everything the workspace holds, or prove it.

``recpipe forget --user U [--user V] [--user-file F]`` erases; ``recpipe forget --verify U``
searches every byte for U and exits 1 when anything is found. Ids are never printed back:
the summary names users by their tombstone (``erased-<12 hex>``), as the stores do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.context import load

WAIT_SECONDS = 600.0  # a night may be running: the erasure waits for it


def read_ids(users: list[str], user_file: Path | None) -> list[str]:
    from tasks.errors import ConfigError

    ids = list(users)
    if user_file is not None:
        try:
            ids += [line.strip() for line in user_file.read_text(encoding="utf-8").splitlines()]
        except OSError as exc:
            raise ConfigError(
                f"--user-file {user_file}: cannot read it ({exc}); expected a text file with one "
                "user id per line"
            ) from None
    return [i for i in ids if i]


def forget(
    ctx: typer.Context,
    user: Annotated[
        list[str] | None, typer.Option("--user", help="raw user id to forget (repeatable)")
    ] = None,
    user_file: Annotated[
        Path | None, typer.Option("--user-file", help="file with one user id per line")
    ] = None,
    verify: Annotated[
        list[str] | None,
        typer.Option("--verify", help="search the workspace for this id instead (repeatable)"),
    ] = None,
    prefect_db: Annotated[
        Path | None,
        typer.Option("--prefect-db", help="a Prefect SQLite database outside the workspace"),
    ] = None,
) -> None:
    """Forget users everywhere (data, tables, models, tracking, reports), or verify it."""
    from tasks.forget.run import clean_ids
    from tasks.storage.workspace import Workspace

    ids = [] if verify else clean_ids(read_ids(user or [], user_file))  # before any write
    config = load(ctx, existing=True)
    ws = Workspace.at(config.workspace)
    url = config.publish.url(ws.database_url)
    extra = [prefect_db] if prefect_db else []
    if verify:
        tables = (config.publish.table, config.publish.similar_table)
        raise typer.Exit(_verify(ws.root, verify, url, extra, tables))
    from tasks.forget.run import forget_users
    from tasks.storage.locks import holder_info

    summary = forget_users(
        ws.root,
        url,
        ids,
        config.tracking.registered_model,
        wait_seconds=max(config.lock.wait_seconds, WAIT_SECONDS),
        holder=holder_info(None, command="recpipe forget"),
        extra_databases=extra,
        tables=(config.publish.table, config.publish.similar_table),
    )
    print_summary(summary)


def print_summary(summary: dict) -> None:
    removed = summary["removed"]
    print(f"forgot {len(summary['users'])} user(s): {', '.join(summary['users'])}")
    if summary["resumed_steps"]:
        print(
            f"  resumed an interrupted request: {', '.join(summary['resumed_steps'])} done before"
        )
    versions = removed["models"]["versions"]
    print(
        f"  model versions trained on their data (tagged, artifacts rewritten, never to serve "
        f"again): {', '.join(versions) or 'none'}"
    )
    for table, n in removed["database"].items():
        print(f"  database table {table}: {n} row(s) deleted")
    for table, info in removed["lake"].items():
        print(
            f"  lake table {table}: {info['rows']} row(s) deleted; {info['files']} old file(s) "
            f"vacuumed, {info['log_entries']} log entr(ies) purged"
        )
    for area, n in removed["files"]["by_area"].items():
        print(f"  files under {area}/: {n} row(s)/occurrence(s) removed")
    for name in removed["files"]["deleted"]:
        print(f"  deleted (could not be rewritten): {name}")
    for name, n in removed["sqlite"].items():
        print(f"  database {name}: {n} value(s) rewritten, compacted")
    prefect = removed["prefect"]["artifacts_deleted"]
    if prefect is not None:
        print(f"  Prefect artifacts holding an id, deleted through the API: {prefect}")
    print(
        "  stage-cache markers and cached similarities removed: "
        f"{removed['markers']['markers_removed']}"
    )
    print(f"  done in {summary['seconds']} s; 'recpipe forget --verify ID' checks every byte")


def _verify(
    root: Path, ids: list[str], url: str, extra: list[Path], tables: tuple[str, ...]
) -> int:
    from tasks.forget.scan import verify

    total = 0
    for uid in ids:
        found = verify(root, uid, database_url=url, extra_files=extra, tables=tables)
        total += len(found)
        for f in found:
            print(f"FOUND {f.where}  form={f.form}  count={f.count}")
        print(f"{len(found)} place(s) hold the id {'(searched every byte)' if not found else ''}")
    return 1 if total else 0
