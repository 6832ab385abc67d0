"""The stage display of ``run``, ``backfill`` and ``bench rerun``.

The nightly flow logs each stage's start and end to the logger ``recpipe.progress``
(``extra={"stage": name, "event": "start" | "end", "seconds": s}``, flows/measure.py) and
training logs each Keras epoch (``extra={"stage": "train", "event": "epoch", "model": m,
"epoch": n, "epochs": total}``, tasks/train.py). :func:`stage_progress` attaches a handler
to that logger for the duration of a command and shows the stages:

* on a terminal, a live display (Rich): each stage with its elapsed time, the running one
  with a spinner and, while a Keras model trains, its epoch; Prefect's console log lines
  are printed above it instead of tearing it;
* otherwise (piped, captured), one plain line per stage as it ends.

Several flow runs (a backfill's dates, bench rerun's three runs) each get their own block,
told apart by the Prefect flow run the records come from.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

LOGGER = "recpipe.progress"


@dataclass(eq=False)
class Stage:
    name: str
    seconds: float = 0.0  # finished runs of the stage, summed
    running_since: float | None = None
    model: str = ""  # the Keras model training now (or last)
    epoch: int = 0
    epochs: int = 0
    failed: bool = False

    def elapsed(self, now: float) -> float:
        running = now - self.running_since if self.running_since is not None else 0.0
        return self.seconds + running


@dataclass
class Night:
    """The stages of one flow run."""

    key: str
    title: str
    started: float
    stages: dict[str, Stage] = field(default_factory=dict)
    ended: float | None = None


class Board:
    """What the records said so far; updated from the flow's thread, read by the display."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.nights: list[Night] = []
        self.started = time.monotonic()

    def night(self, key: str, title: str, now: float) -> tuple[Night, bool]:
        if self.nights and self.nights[-1].key == key:
            return self.nights[-1], False
        if self.nights and self.nights[-1].ended is None:
            self.nights[-1].ended = now
        self.nights.append(Night(key, title, now))
        return self.nights[-1], True

    def record(
        self, record: logging.LogRecord, key: str, title: str
    ) -> tuple[Night, Stage, bool, float]:
        """Apply one record: its night, its stage, whether the night is new, and for an
        ``end`` the seconds the stage took this time."""
        now = time.monotonic()
        night, new = self.night(key, title, now)
        name = str(record.stage)  # type: ignore[attr-defined]
        stage = night.stages.setdefault(name, Stage(name))
        event = getattr(record, "event", None)
        spent = 0.0
        if event == "start":
            stage.running_since = now
            stage.model = str(getattr(record, "model", ""))
            stage.epoch = stage.epochs = 0
        elif event == "end":
            since = stage.running_since if stage.running_since is not None else now
            # the flow measured the stage: its figure wins over this clock
            spent = float(getattr(record, "seconds", now - since))
            stage.seconds += spent
            stage.running_since = None
        elif event == "epoch":
            stage.model = str(getattr(record, "model", ""))
            stage.epoch = int(getattr(record, "epoch", 0))
            stage.epochs = int(getattr(record, "epochs", 0))
        return night, stage, new, spent

    def fail(self, stage_name: str | None) -> None:
        """The command failed: stop the clocks of the last night; mark the stage that
        failed (named by the error) or, without a name, the ones still running."""
        now = time.monotonic()
        for night in self.nights[-1:]:
            for stage in night.stages.values():
                if stage.running_since is not None:
                    stage.seconds += now - stage.running_since
                    stage.running_since = None
                    stage.failed = stage_name is None
                if stage.name == stage_name:
                    stage.failed = True
            night.ended = night.ended or now


def _flow_run() -> tuple[str, str]:
    """Key and title of the Prefect flow run emitting the record (none outside one)."""
    context = sys.modules.get("prefect.context")
    run = None
    if context is not None:
        try:
            flow_context = context.FlowRunContext.get()
            run = flow_context.flow_run if flow_context else None
        except Exception:  # noqa: BLE001 - a display never breaks the run
            run = None
    if run is None:
        return "", "nightly"
    run_date = (run.parameters or {}).get("run_date") or "today"
    return str(run.id), f"nightly {run_date} · flow run {run.name}"


class ProgressHandler(logging.Handler):
    """Feeds ``recpipe.progress`` records to a display."""

    def __init__(self, display: PlainDisplay | LiveDisplay) -> None:
        super().__init__(logging.INFO)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "stage", None) is None or getattr(record, "event", None) is None:
            return
        try:
            self.display.update(record, *_flow_run())
        except Exception:  # noqa: BLE001
            self.handleError(record)


class PlainDisplay:
    """One line per stage, printed when the stage ends (a stage run several times in a row,
    like the lock, is one line)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.board = Board()
        self.out = out
        self.pending: Stage | None = None
        self.pending_seconds = 0.0

    def _write(self, text: str) -> None:
        # not print(): inside a flow run with log_prints, Prefect turns print into a log line
        out = self.out or sys.stdout
        out.write(text + "\n")
        out.flush()

    def _flush(self) -> None:
        if self.pending is None:
            return
        stage, self.pending = self.pending, None
        note = f"  {stage.model}" if stage.model else ""
        if stage.model and stage.epochs:
            note = f"  {stage.model}: {stage.epoch}/{stage.epochs} epochs"
        self._write(f"  {stage.name:<10} {self.pending_seconds:>7.2f} s{note}")

    def update(self, record: logging.LogRecord, key: str, title: str) -> None:
        with self.board.lock:
            night, stage, new, spent = self.board.record(record, key, title)
            if new:
                self._flush()
                self._write(f"{night.title}:")
            event = record.event  # type: ignore[attr-defined]
            if event in ("start", "end") and self.pending is not None and self.pending is not stage:
                self._flush()
            if event == "end":
                if self.pending is None:
                    self.pending, self.pending_seconds = stage, 0.0
                self.pending_seconds += spent

    def close(self, failed: bool, stage: str | None = None) -> None:
        with self.board.lock:
            self._flush()


class LiveDisplay:
    """A Rich live display of the stages, refreshed four times a second."""

    SHOWN_NIGHTS = 3  # earlier nights of a backfill fold into one line each

    def __init__(self, title: str) -> None:
        self.board = Board()
        self.title = title
        self.live: Any = None
        self.routed: list[tuple[logging.StreamHandler, Any, Any]] = []

    def update(self, record: logging.LogRecord, key: str, title: str) -> None:
        with self.board.lock:
            self.board.record(record, key, title)

    # -- rendering ------------------------------------------------------------------------
    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        with self.board.lock:
            now = time.monotonic()
            nights = self.board.nights
            rows: list[Any] = []
            if not nights:
                rows.append(
                    Spinner(
                        "dots",
                        Text.assemble(
                            (f"{self.title}: starting", "bold"),
                            f" (imports, Prefect) {now - self.board.started:5.1f} s",
                        ),
                    )
                )
            for night in nights[:-1][-self.SHOWN_NIGHTS :]:
                seconds = (night.ended or now) - night.started
                failed = any(s.failed for s in night.stages.values())
                outcome = ("✗", "red") if failed else ("✓", "green")
                rows.append(Text.assemble(outcome, f" {night.title}  {seconds:.1f} s"))
            if nights:
                night = nights[-1]
                grid = Table.grid(padding=(0, 1))
                for _ in range(5):
                    grid.add_column()
                for stage in night.stages.values():
                    elapsed = stage.elapsed(now)
                    if stage.running_since is not None:
                        mark: Any = Spinner("dots", style="cyan")
                    elif stage.failed:
                        mark = Text("✗", style="red")
                    else:
                        mark = Text("✓", style="green")
                    detail: Any = ""
                    bar: Any = ""
                    if stage.model:
                        detail = stage.model
                    if stage.model and stage.epochs:
                        detail = f"{stage.model} epoch {stage.epoch}/{stage.epochs}"
                        if stage.running_since is not None:
                            bar = ProgressBar(total=stage.epochs, completed=stage.epoch, width=20)
                    grid.add_row(
                        mark, Text(stage.name, style="bold"), f"{elapsed:7.1f} s", detail, bar
                    )
                total = (night.ended or now) - night.started
                rows.append(Text(f"{night.title}  {total:.1f} s", style="bold"))
                rows.append(grid)
            return Group(*rows)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        from rich.console import Console
        from rich.live import Live

        stderr_terminal = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.live = Live(
            console=Console(file=sys.stdout),
            get_renderable=self.render,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=stderr_terminal,
        )
        terminals = [s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s]
        self.live.start()
        if stderr_terminal:
            self._route_handlers(terminals, sys.stderr)

    def _route_handlers(self, terminals: list[Any], proxy: Any) -> None:
        """Log handlers (Prefect's console handler) that write to the terminal write
        through the live display instead, which prints their lines above it."""
        loggers = [logging.getLogger()] + [
            lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
        ]
        seen: set[int] = set()
        for logger in loggers:
            for handler in logger.handlers:
                if id(handler) in seen or not isinstance(handler, logging.StreamHandler):
                    continue
                seen.add(id(handler))
                if not any(handler.stream is t for t in terminals):
                    continue
                console = getattr(handler, "console", None)  # PrefectConsoleHandler
                old_file = getattr(console, "file", None)
                old_stream = handler.setStream(proxy)
                if console is not None:
                    console.file = proxy
                self.routed.append((handler, old_stream, old_file))

    def close(self, failed: bool, stage: str | None = None) -> None:
        with self.board.lock:
            if failed:
                self.board.fail(stage)
        for handler, stream, file in self.routed[::-1]:
            handler.setStream(stream)
            if file is not None:  # only a PrefectConsoleHandler has a console (file not None)
                handler.console.file = file  # type: ignore[attr-defined]
        self.routed.clear()
        if self.live is not None:
            self.live.stop()
            if failed and self.board.nights:  # show where it stopped
                self.live.console.print(self.render())


@contextmanager
def stage_progress(title: str = "recpipe") -> Iterator[PlainDisplay | LiveDisplay]:
    """Show the stages of the flow runs started inside the block (see the module doc)."""
    live = bool(getattr(sys.stdout, "isatty", lambda: False)())
    display: PlainDisplay | LiveDisplay = LiveDisplay(title) if live else PlainDisplay()
    logger = logging.getLogger(LOGGER)
    handler = ProgressHandler(display)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the display shows them; not the console log as well
    logger.addHandler(handler)
    failed, stage = True, None
    try:
        if isinstance(display, LiveDisplay):
            display.start()
        yield display
        failed = False
    except BaseException as exc:
        stage = getattr(exc, "recpipe_stage", None)  # set by the flow (flows/measure.py)
        raise
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        display.close(failed, stage)
