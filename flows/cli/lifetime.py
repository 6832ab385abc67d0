"""A command never hangs: it ends within seconds of SIGTERM, and within a minute of its
temporary Prefect server dying.

* **SIGTERM**: the command stops (``SystemExit`` 143 in the main thread, so ``finally``
  blocks and the locks' releases run); if it has not ended ``GRACE_SECONDS`` later (a
  flow engine reporting the crash to an API that does not answer), the process exits
  there and then. The deadline is armed from a thread woken by Python's signal wake-up
  file, so it holds whichever Python handler is installed at the time (Prefect installs
  its own while a flow runs).
* **The temporary Prefect server dies** (flows/prefect_server.py watches it): one line
  says so, and what the run had published (from the publish journal), and the command
  exits with code 2.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

GRACE_SECONDS = 8.0
TERMINATED = 128 + signal.SIGTERM
_STARTED = datetime.now(UTC)
_ARMED = threading.Event()
_INSTALLED = threading.Event()


def install() -> None:
    """SIGTERM handling and the server watch for this command (main thread only)."""
    global _STARTED
    _STARTED = datetime.now(UTC)
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    if _INSTALLED.is_set():
        return
    _INSTALLED.set()
    _wake_on_signals()
    from flows.prefect_server import on_server_death

    on_server_death(_server_died)


def _on_sigterm(signum: int, frame: Any) -> None:
    _arm_deadline()
    raise SystemExit(TERMINATED)


def _wake_on_signals() -> None:
    """A thread that reads the signal wake-up pipe and arms the deadline on SIGTERM."""
    try:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except (OSError, ValueError):
        return

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGTERM in data:
                _arm_deadline()

    threading.Thread(target=watch, name="recpipe-signal-watch", daemon=True).start()


def _arm_deadline() -> None:
    if _ARMED.is_set():
        return
    _ARMED.set()
    _say(f"stopping: SIGTERM received (at most {GRACE_SECONDS:g} s)")

    def deadline() -> None:
        time.sleep(GRACE_SECONDS)
        _say(
            f"stopped by SIGTERM: the command had not ended {GRACE_SECONDS:g} s after it. "
            + published_note()
        )
        os._exit(TERMINATED)

    threading.Thread(target=deadline, name="recpipe-sigterm-deadline", daemon=True).start()


def _server_died(pid: int, code: int | None) -> None:
    _say(
        f"error: the temporary Prefect server (pid {pid}) exited with code {code} during the "
        f"command, so the run cannot go on. {published_note()} Run it again; set "
        "PREFECT_API_URL to a Prefect server you run ('prefect server start') to avoid the "
        "temporary one"
    )
    os._exit(2)


def published_note() -> str:
    """What publishes this command started say about themselves (the publish journal)."""
    from flows.cli.failure import SEEN
    from tasks.storage.published import NOTHING, publication, publication_note

    workspace = SEEN.get("workspace") if SEEN.get("loaded") else None
    folder = Path(workspace) / "journal" if workspace else None
    if folder is None or not folder.is_dir():
        return NOTHING
    notes = []
    try:
        from tasks.storage import journal

        for path in sorted(folder.glob("*.json")):
            record = journal.read(path)
            if record.get("created_at", "") < _STARTED.isoformat(timespec="milliseconds"):
                continue
            day = date.fromisoformat(record["run_date"])
            facts = publication(folder, day, record["run_id"], None)
            notes.append(f"{record['run_date']}: {publication_note(facts)}")
    except Exception:  # noqa: BLE001 - the line must come out whatever the journal holds
        return "What was published: see 'recpipe doctor'."
    return " ".join(notes) if notes else NOTHING


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"recpipe: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
