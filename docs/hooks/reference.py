"""MkDocs hook: the reference pages' tables, generated from the code at build time.

A page holds ``<!-- reference: NAME -->`` where a table goes: ``cli`` (every command of
the ``recpipe`` Typer app, walked as its Click tree), ``config`` (every section and key of
``PipelineConfig``) and ``tables`` (the published tables' columns, from the database
schema, and the output suite's rules). The build fails when a marker names nothing known,
or when a published column has no meaning written here, so the pages cannot drift from
the code.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any

MARKER = re.compile(r"<!-- reference: (\w+) -->")

# What each published column means; its name, type and nullability come from the schema.
COLUMN_MEANINGS = {
    "recommendations": {
        "run_id": "the Prefect flow run that wrote it",
        "run_date": "the logical date of the nightly run",
        "user_id": "raw user id, as in the input",
        "rank": "1..K, unique per user",
        "item_id": "raw item id, never one the user already interacted with",
        "score": (
            "model score, descending with rank among a user's rows of one strategy "
            "(`new_item` rows come from another model, on its own scale)"
        ),
        "model_name": "what produced it (MLflow registry): the champion, or the "
        "content-aware model of `new_item` rows",
        "model_version": "what produced it (MLflow registry)",
        "strategy": (
            "`personal` (the champion's own ranking), `cold_start` (the champion does not "
            "know the user or their history is too short: items ranked by the genres of what "
            "they did), `social` (no usable history, but friends who have some: what the "
            "friends interacted with), `fallback` (nothing usable: popular in the last 30 "
            "days; or a non-personal champion such as popularity: its own ranking), "
            "`new_item` (the list's last rows, `score.new_items_share` of K: catalogue items "
            "nobody has interacted with yet, ranked from their content by a content-aware "
            "model)"
        ),
        "reason": (
            'e.g. "because you watched Heat (1995)": the item of the user\'s history that '
            'co-occurs most with the recommendation; for a new item, e.g. "new: genres and '
            'description like Heat (1995)": the item of the history whose content looks most '
            "like it and the contents they share; may be null"
        ),
        "refreshed_at": (
            "when the row was published (UTC): by the nightly, or by an intraday refresh of "
            "its user (`recpipe refresh`); null on rows published before the column existed "
            "(it is added to older tables on the next publish, their rows kept)"
        ),
    },
    "similar_items": {
        "run_id": "the flow run that wrote it",
        "run_date": "the logical date of the nightly run",
        "item_id": "raw item id",
        "rank": "1..K, unique per item",
        "similar_item_id": "an item often interacted with by the same users",
        "score": "similarity, descending with rank",
    },
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def fill(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in RENDERERS:
            raise ValueError(f"{page.file.src_uri}: unknown reference {name!r}")
        return RENDERERS[name]()

    return MARKER.sub(fill, markdown)


def cell(text: object) -> str:
    """``text`` fit for one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --- the command line -------------------------------------------------------------------


def cli_reference() -> str:
    from typer.main import get_command

    from flows.cli import app

    root = get_command(app)
    context = type(root).context_class  # Typer's own Click
    out: list[str] = []

    def walk(command: Any, ctx: Any, depth: int) -> None:
        path = ctx.command_path
        out.append(f"{'#' * min(depth + 2, 6)} `{path}`\n")
        text = inspect.cleandoc(command.help or "").split("\f")[0].strip()
        if text:
            out.append(text + "\n")
        pieces = " ".join(command.collect_usage_pieces(ctx))
        out.append(f"```text\n{path} {pieces}\n```\n")
        panels: dict[str, list[str]] = {}
        for param in command.params:
            record = None if getattr(param, "hidden", False) else param.get_help_record(ctx)
            if record is not None:
                panel = getattr(param, "rich_help_panel", None) or ""
                panels.setdefault(panel, []).append(f"| `{record[0]}` | {cell(record[1])} |")
        for panel, rows in panels.items():
            if panel:
                out.append(f"**{panel}**\n")
            out.extend(["| option | what it does |", "|---|---|", *rows, ""])
        for name in sorted(getattr(command, "commands", {})):
            sub = command.commands[name]
            if not sub.hidden:
                walk(sub, context(sub, info_name=name, parent=ctx), depth + 1)

    walk(root, context(root, info_name="recpipe"), 0)
    return "\n".join(out)


# --- the configuration ------------------------------------------------------------------


def config_reference() -> str:
    from pydantic import BaseModel

    from tasks.config import PipelineConfig
    from tasks.config.pipeline import ENV_PREFIX

    out: list[str] = []
    top = [(name, f) for name, f in PipelineConfig.model_fields.items()]
    plain = [(n, f) for n, f in top if not section_of(f.annotation)]
    out.append("## Top level\n")
    out.append(key_table(plain, (), ENV_PREFIX))
    for name, field in top:
        section = section_of(field.annotation)
        if section is not None and issubclass(section, BaseModel):
            describe_section(field.alias or name, section, out, ENV_PREFIX)
    return "\n".join(out)


def describe_section(path: str, section: Any, out: list[str], prefix: str) -> None:
    fields = list(section.model_fields.items())
    keys = [(n, f) for n, f in fields if section_of(f.annotation) is None]
    depth = path.count(".")
    out.append(f"{'#' * min(depth + 2, 6)} `[{path}]`\n")
    doc = inspect.getdoc(section) or ""
    if doc and section.__doc__:  # the class's own docstring, not an inherited one
        out.append(rst_to_markdown(doc) + "\n")
    if keys:
        out.append(key_table(keys, tuple(path.split(".")), prefix))
    for name, field in fields:
        sub = section_of(field.annotation)
        if sub is not None:
            describe_section(f"{path}.{field.alias or name}", sub, out, prefix)


def key_table(keys: list[tuple[str, Any]], path: tuple[str, ...], prefix: str) -> str:
    rows = ["| key | type | default | bounds | environment variable |", "|---|---|---|---|---|"]
    for name, field in keys:
        key = field.alias or name
        if not path and key == "workspace":
            variable = "`RECPIPE_WORKSPACE`"
        else:
            variable = "`" + prefix + "__".join(p.upper() for p in (*path, key)) + "`"
        rows.append(
            f"| `{key}` | {cell(type_name(field.annotation))} | {cell(default_of(field))} "
            f"| {cell(bounds_of(field))} | {variable} |"
        )
    return "\n".join(rows) + "\n"


def section_of(annotation: Any) -> Any:
    from pydantic import BaseModel

    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    return None


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def default_of(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def bounds_of(field: Any) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    found = []
    for meta in field.metadata:
        for attr, sign in words.items():
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(f"{sign} {value}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            found.append(f"matches `{pattern}`")
    return ", ".join(found)


def rst_to_markdown(text: str) -> str:
    """A docstring as Markdown: ``code`` to `code`, :func:`name` to `name`."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


# --- the published tables ---------------------------------------------------------------


def tables_reference() -> str:
    from expectations.recommendations import build_recommendations_suite
    from tasks.storage.database import sql_table

    out: list[str] = []
    for kind, meanings in COLUMN_MEANINGS.items():
        table = sql_table(kind, kind=kind)
        columns = [c.name for c in table.columns]
        if set(columns) != set(meanings):
            raise ValueError(
                f"table {kind}: the schema has columns {columns}, the reference describes "
                f"{sorted(meanings)}"
            )
        out.append(f"## `{kind}`\n")
        out.append("| column | type | null | meaning |")
        out.append("|---|---|---|---|")
        for column in table.columns:
            null = "may be null" if column.nullable else "never null"
            meaning = cell(meanings[column.name])
            out.append(f"| `{column.name}` | {cell(column.type)} | {null} | {meaning} |")
        out.append("")
    suite = build_recommendations_suite(k=10)
    out.append("## The output suite's rules\n")
    out.append(
        f"Before publishing, suite `{suite.name}` (`expectations/recommendations.py`) checks "
        "the table; with `score.k = 10`, its rules are:\n"
    )
    for expectation in suite.expectations:
        rule = (expectation.meta or {}).get("rule") or type(expectation).__name__
        out.append(f"- {rule}")
    return "\n".join(out) + "\n"


RENDERERS = {"cli": cli_reference, "config": config_reference, "tables": tables_reference}
