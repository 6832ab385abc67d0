"""The one way a command fails: one line on stderr, the traceback in a log file, exit 2.

Whatever was raised (a ``RecpipeError``, an ``OSError`` such as a full disk or a
permission refused, an error of GX, SQLAlchemy, MLflow, Keras or Prefect wrapping one of
them), :func:`report` finds the root cause, the stage that raised it (``recpipe_stage``,
set by ``flows/measure.py``) and prints::

    recpipe: stage <stage> failed: <cause, naming the file or table>; <what to do> (...)

A run that failed after its publish committed (in the report stage, or in the lake tables
after the database) also says what it published, table by table.

The full traceback goes to ``<workspace>/logs/recpipe-<UTC time>.log`` (the line says
where), and to stderr as well with ``--debug``.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# What the last command resolved: set by the global options and by ``context.load``.
SEEN: dict[str, Any] = {"workspace": None, "debug": False, "loaded": False}

_PATH_NAMES = ("path", "dest", "target", "filename", "file", "out", "folder", "tmp", "part")
# and any other local named like one, e.g. MLflow's ``yaml_file_name``
_PATH_SUFFIXES = ("_path", "_file", "file_name", "filename")
_OSERROR_ADVICE = {
    errno.ENOSPC: ("no space left on device", "free space or move the workspace (--workspace)"),
    errno.EDQUOT: ("disk quota exceeded", "free space or move the workspace (--workspace)"),
    errno.EACCES: (
        "permission denied",
        "give this user write access (chmod u+rwx) or move the workspace (--workspace)",
    ),
    errno.EPERM: (
        "operation not permitted",
        "give this user write access or move the workspace (--workspace)",
    ),
    errno.EROFS: ("read-only file system", "move the workspace (--workspace) to a writable disk"),
    errno.ENOTDIR: (
        "not a folder:",
        "a file stands where a folder is expected; move it away or choose another --workspace",
    ),
    errno.EEXIST: ("a file already exists at", "move it away or choose another --workspace"),
    errno.ENOENT: ("no such file or folder:", "check the path and that nothing deletes it"),
}


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (causes, contexts, exception groups), outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(getattr(current, "exceptions", ()) or ())
        todo.append(current.__cause__)
        if not current.__suppress_context__:
            todo.append(current.__context__)
    return seen


def root_cause(exc: BaseException) -> BaseException:
    """The exception that says what went wrong: a deliberate ``RecpipeError`` first, then the
    innermost ``OSError``, else the innermost exception."""
    from tasks.errors import RecpipeError

    found = chain(exc)
    for kind in (RecpipeError, OSError):
        for candidate in found:
            if isinstance(candidate, kind):
                return candidate
    return found[-1]


def stage_of(exc: BaseException) -> str | None:
    for candidate in chain(exc):
        stage = getattr(candidate, "recpipe_stage", None)
        if stage:
            return str(stage)
    return None


def _path_in_traceback(exc: BaseException) -> str | None:
    """A file path among the innermost frames' locals (an ``OSError`` from ``write()`` does
    not carry its file name)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        names = [*_PATH_NAMES, *(n for n in frame.f_locals if n.endswith(_PATH_SUFFIXES))]
        for name in names:
            value = frame.f_locals.get(name)
            if isinstance(value, Path) or (isinstance(value, str) and os.sep in value):
                return str(value)
            handle_name = getattr(value, "name", None)
            if isinstance(handle_name, str) and os.sep in handle_name:
                return handle_name
    return None


def publication_of(exc: BaseException) -> str | None:
    """What the failed run published (``recpipe_publication``, set by ``flows/night.py``
    from the publish journal), as a sentence, when it published something; None when it
    published nothing (the stages before publishing say so in their own messages)."""
    for candidate in chain(exc):
        facts = getattr(candidate, "recpipe_publication", None)
        if facts:
            if facts.get("state") in ("none", "rolled_back"):
                return None
            from tasks.storage.published import publication_note

            return publication_note(facts)
    return None


def describe(exc: BaseException) -> str:
    """``<cause naming the file or table>; <what to do>`` for the root cause."""
    from tasks.errors import RecpipeError

    if isinstance(exc, RecpipeError):
        return str(exc)
    if isinstance(exc, OSError):
        what, todo = _OSERROR_ADVICE.get(
            exc.errno or -1,
            ((exc.strerror or type(exc).__name__).lower(), "check the path and its disk"),
        )
        path = exc.filename or _path_in_traceback(exc)
        if path is None:
            return f"{what}; {todo}"
        verb = {errno.ENOSPC: " writing", errno.EDQUOT: " writing"}.get(exc.errno or -1, "")
        if not verb and not what.endswith((":", " at")):
            verb = " on"
        other = f" -> {exc.filename2}" if exc.filename2 else ""
        return f"{what}{verb} {path}{other}: {todo}"
    text = " ".join(str(getattr(exc, "orig", None) or exc).split()) or "(no message)"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}; see the log for the traceback, rerun with --debug"


def write_log(exc: BaseException, workspace: Path | None) -> Path | None:
    """The traceback in ``<workspace>/logs/recpipe-<UTC time>.log`` (a temporary folder when
    the workspace cannot be written); its path, None when nothing could be written."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    text = "".join(traceback.format_exception(exc))
    header = f"recpipe {' '.join(sys.argv[1:])}\n{datetime.now(UTC).isoformat()}\n\n"
    folders = [Path(tempfile.gettempdir()) / "recpipe-logs"]
    if workspace is not None:
        folders.insert(0, Path(workspace).expanduser() / "logs")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"recpipe-{stamp}.log"
            path.write_text(header + text, encoding="utf-8")
            return path.absolute()
        except OSError:
            continue
    return None


def report(exc: BaseException) -> int:
    """Say ``exc`` in one line (traceback to the log, and to stderr with ``--debug``); 2."""
    from tasks.errors import RecpipeError

    exc = _with_stage_failure(exc)
    cause = root_cause(exc)
    stage = stage_of(exc)
    message = describe(cause)
    deliberate = isinstance(cause, RecpipeError)
    if SEEN["debug"]:
        traceback.print_exception(exc, file=sys.stderr)
    where = ""
    # A deliberate error outside a run (a bad option, an empty store) says all there is;
    # anything else, or anything a stage raised, leaves its traceback in the workspace.
    if not deliberate or (stage and SEEN["loaded"]):
        log = write_log(exc, SEEN["workspace"] if SEEN["loaded"] else None)
        if log is not None:
            where = f" (traceback: {log})"
    what = f"stage {stage} failed" if stage else "error"
    published = publication_of(exc)
    if published:
        message = f"{message.rstrip('. ')}. {published}"
    print(f"recpipe: {what}: {message}{where}", file=sys.stderr)
    if not SEEN["debug"]:
        # Logging that fails at exit (Prefect's log shipper to a server on the same full
        # disk) must not print after the line that says what happened.
        logging.raiseExceptions = False
    return 2


def _with_stage_failure(exc: BaseException) -> BaseException:
    """``exc``, or the stage failure behind it when ``exc`` lost it: Prefect raises its own
    error, with the chain cut, when it cannot record a failed run (its database on a full
    disk); the stage's exception is the one to report (the log keeps both)."""
    measure = sys.modules.get("flows.measure")
    earlier = measure.LAST_FAILURE[0] if measure and measure.LAST_FAILURE else None
    if earlier is None or stage_of(exc) is not None or any(e is earlier for e in chain(exc)):
        return exc
    earlier.add_note(f"then, while recording the failure: {type(exc).__name__}: {exc}")
    return earlier


def forget_stage_failures() -> None:
    """A new command starts without an earlier command's stage failure."""
    measure = sys.modules.get("flows.measure")
    if measure is not None:
        measure.LAST_FAILURE.clear()


class _NoRunTracebacks(logging.Filter):
    """Drops Prefect's ERROR records of failed flow and task runs (and their tracebacks):
    the CLI's one line says it, the log file holds the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def quiet_prefect_failures(quiet: bool = True) -> None:
    """In the default (quiet) mode, Prefect does not print failed runs' tracebacks; with
    ``quiet=False`` (``--verbose``, ``--debug``) it does again."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _NoRunTracebacks)]:
            logger.removeFilter(old)
        if quiet:
            logger.addFilter(_NoRunTracebacks())
