"""Named checkpoints where tests stop a real process, to prove what survives a crash.

``RECPIPE_FAULT_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
that point (no ``finally``, no ``atexit``: what a power cut or an OOM kill leaves).
``RECPIPE_PAUSE_AT=<point>`` with ``RECPIPE_PAUSE_FILE=<path>`` makes it create
``<path>.reached`` and wait until ``<path>`` exists, so a test can line two runs up at
the same moment. Unset, a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAULT_ENV = "RECPIPE_FAULT_AT"
PAUSE_ENV = "RECPIPE_PAUSE_AT"
PAUSE_FILE_ENV = "RECPIPE_PAUSE_FILE"
PAUSE_LIMIT_SECONDS = 300


def checkpoint(point: str) -> None:
    """Die or pause here when the environment names ``point``."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) == point and os.environ.get(PAUSE_FILE_ENV):
        gate = Path(os.environ[PAUSE_FILE_ENV])
        Path(f"{gate}.reached").touch()
        deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
