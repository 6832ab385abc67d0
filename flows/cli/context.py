"""What every command gets from the global options (``--workspace``, ``--config``,
``--verbose``, ``--debug``): the resolved config, the process environment, dates parsed clearly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, overload

import typer

from flows.cli.failure import SEEN
from flows.cli.options import overrides


@dataclass(frozen=True)
class State:
    """The global options, given before the command (``recpipe --workspace W run``)."""

    workspace: Path | None = None
    config: Path | None = None
    verbose: bool = False
    debug: bool = False


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, State) else State()


def load(
    ctx: typer.Context,
    options: dict[str, Any] | None = None,
    *,
    environment: bool = True,
    temporary_server: bool = True,
    workspace: Path | None = None,
    existing: bool = False,
) -> Any:
    """The pipeline config (defaults < TOML < ``RECPIPE__*`` < options; ``workspace``
    replaces ``--workspace``); with ``environment``, the process environment is prepared
    for the libraries too. ``existing``: a command that reads a workspace (status,
    model, recs, doctor, forget) refuses one that does not exist, rather than reading
    a new empty one (a misspelled ``--workspace``)."""
    from tasks.config import load_config
    from tasks.errors import ConfigError

    s = state(ctx)
    config = load_config(s.config, overrides=overrides(workspace or s.workspace, options or {}))
    if existing and not Path(config.workspace).is_dir():
        raise ConfigError(
            f"workspace {config.workspace} does not exist; expected the folder 'recpipe run' "
            "writes (--workspace or RECPIPE_WORKSPACE); check the path, or run 'recpipe run' "
            "first"
        )
    SEEN.update(workspace=config.workspace, loaded=True)  # where a failure's log goes
    if environment:
        prepare(config.workspace, temporary_server, s.verbose)
    return config


def prepare(workspace: Path, temporary_server: bool, verbose: bool) -> None:
    """The process environment for the libraries (quiet unless ``--verbose``)."""
    from flows.environment import prepare_environment

    prepare_environment(workspace, temporary_server=temporary_server, verbose=verbose)


@overload
def parse_date(value: str, option: str) -> date: ...
@overload
def parse_date(value: None, option: str) -> None: ...
@overload
def parse_date(value: str | None, option: str) -> date | None: ...
def parse_date(value: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` -> date (None stays None); a clear error otherwise."""
    from tasks.errors import ConfigError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date; expected YYYY-MM-DD, e.g. 2026-03-02"
        ) from None
