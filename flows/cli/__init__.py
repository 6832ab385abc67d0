"""The ``recpipe`` command line, on Typer: the app, its global options, every command.

One module per command group: run.py (run, backfill), operate.py (serve, trigger,
status), model.py, recs.py, doctor.py, evaluate.py, generate.py, bench.py; summary.py
prints a night's summary, progress.py the live stage display, output.py the tables.

Imports stay light until a command runs (``recpipe --help`` answers at once): the
pipeline, Prefect, MLflow, pandas and TensorFlow are imported inside the commands, Rich
when something is printed with it.

Exit codes: 0 done; 2 a usage error or any failure (one line on stderr: ``recpipe: stage
X failed: ...`` or ``recpipe: error: ...``; the traceback in ``<workspace>/logs``, and on
stderr with ``--debug``: see failure.py); 1 a benchmark found damage; 3 ``trigger --wait``
gave up at ``--timeout``; 1 ``doctor`` found stores that do not agree; 143 stopped by
SIGTERM (lifetime.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import (
    bench,
    doctor,
    evaluate,
    failure,
    forget,
    generate,
    model,
    operate,
    recs,
    refresh,
    run,
)
from flows.cli.context import State

app = typer.Typer(
    name="recpipe",
    help="Nightly batch recommender pipeline (Prefect, Great Expectations, Keras, MLflow).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def global_options(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="folder holding everything a run writes "
            "(default: $RECPIPE_WORKSPACE or ./recpipe-home)",
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file")] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="show the libraries' log lines (Prefect, MLflow, ...)"
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="on a failure, print the full traceback too"),
    ] = False,
) -> None:
    """Nightly batch recommender pipeline (Prefect, Great Expectations, Keras, MLflow)."""
    ctx.obj = State(workspace=workspace, config=config, verbose=verbose, debug=debug)
    failure.SEEN.update(workspace=workspace, debug=debug, loaded=False)
    failure.forget_stage_failures()
    failure.quiet_prefect_failures(quiet=not (verbose or debug))


app.command("run")(run.run)
app.command("backfill")(run.backfill)
app.command("refresh")(refresh.refresh)
app.command("serve")(operate.serve)
app.command("trigger")(operate.trigger)
app.command("status")(operate.status)
app.add_typer(model.app, name="model")
app.add_typer(recs.app, name="recs")
app.command("doctor")(doctor.doctor)
app.command("forget")(forget.forget)
app.command("evaluate")(evaluate.evaluate)
app.command("generate")(generate.generate)
app.add_typer(bench.app, name="bench")
app.command("backtest")(__import__("flows.cli.backtest", fromlist=["backtest"]).backtest)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    from flows.cli import lifetime

    lifetime.install()  # SIGTERM ends it within seconds, so does its Prefect server's death
    try:
        typer.main.get_command(app).main(args=argv, prog_name="recpipe", standalone_mode=True)
    except SystemExit as exc:
        return exit_code(exc.code)
    except Exception as exc:  # noqa: BLE001 - the one failure path: every error ends here
        return failure.report(exc)
    return 0


def exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
