"""Rich output for the commands: a console on whatever ``sys.stdout`` is now, and tables.

On a terminal, tables get the terminal's width and colour. Piped or captured, they are
plain text as wide as their content (no wrapping, no colour), so a line can be grepped.
Rich is imported when a command prints, never for ``--help``.
"""

from __future__ import annotations

import sys
from typing import Any

PLAIN_WIDTH = 1000  # piped output: wide enough that no row is wrapped


def is_terminal() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def console() -> Any:
    from rich.console import Console

    if is_terminal():
        return Console(file=sys.stdout, highlight=False)
    return Console(
        file=sys.stdout, width=PLAIN_WIDTH, color_system=None, highlight=False, emoji=False
    )


def table(*columns: str, title: str | None = None) -> Any:
    """A table whose columns are named ``columns``: a name starting with ``>`` is a
    right-aligned (numeric) column, one starting with ``~`` may wrap on a narrow terminal
    (the others never wrap)."""
    from rich import box
    from rich.table import Table

    out = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    for name in columns:
        out.add_column(
            name.lstrip(">~"),
            justify="right" if name.startswith(">") else "left",
            no_wrap=not name.startswith("~"),
        )
    return out


def show(*renderables: Any) -> None:
    """Print tables and text (text is not read as Rich markup); piped, without the
    padding that would end each line of a table with spaces."""
    out = console()
    for item in renderables:
        if isinstance(item, str):
            out.print(item, markup=False, highlight=False, soft_wrap=True)
        elif is_terminal():
            out.print(item)
        else:
            with out.capture() as captured:
                out.print(item)
            text = "\n".join(line.rstrip() for line in captured.get().splitlines())
            sys.stdout.write(text + "\n")
