"""What a night measures about its own stages: wall time, peak memory, which one failed.

Prefect records each task run's duration, but a stage here is several tasks (features
and scoring fan out into partitions and shards, train + evaluate run per model) and
Prefect does not measure memory; the growth benchmark and the run summary need both per
stage, so the flow keeps this small clock. Each stage's start and end also go to the
``recpipe.progress`` logger, which the CLI turns into its live display.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

progress = logging.getLogger("recpipe.progress")


class StageClock:
    """Runs stages in order, records the wall time of each, the peak memory (resident set
    size of this process, sampled every 50 ms) while it ran, and which one failed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.failed: str | None = None

    def run(
        self,
        stage: str,
        fn: Callable[..., Any],
        *args: Any,
        progress_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``fn(*args, **kwargs)`` timed as ``stage``; ``progress_info`` (e.g. the model's
        name) goes with its start and end records."""
        start = time.perf_counter()
        sampler = PeakMemory()
        before = sampler.peak
        info = progress_info or {}
        progress.info("%s started", stage, extra={"stage": stage, "event": "start", **info})
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if self.failed is None:
                self.failed = stage
                mark_stage(exc, stage)
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + elapsed, 2)
            peak = sampler.stop()
            self.peak_mb[stage] = max(self.peak_mb.get(stage, 0.0), peak)
            progress.info(
                "%s finished in %.1f s",
                stage,
                elapsed,
                extra={"stage": stage, "event": "end", "seconds": round(elapsed, 2), **info},
            )
            if peak * 2**20 - before > RELEASE_AFTER_BYTES:
                release_memory()  # a full collection costs ~0.3 s once TF and GX are loaded


RELEASE_AFTER_BYTES = 256 * 2**20


def release_memory() -> None:
    """Hand memory freed by a stage back to the system, so the next stage does not start
    from the previous one's high-water mark: the allocator's free lists (glibc's
    ``malloc_trim``) and Arrow's memory pool keep what large tables once used."""
    gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


class PeakMemory:
    """The largest resident set size of this process seen while it runs (Linux /proc;
    elsewhere nothing is sampled and the peak is 0)."""

    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, interval: float = 0.05) -> None:
        self.peak = self._rss()
        self._done = threading.Event()
        self._thread = None
        if self.peak:
            self._thread = threading.Thread(target=self._poll, args=(interval,), daemon=True)
            self._thread.start()

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm", "rb") as handle:
                return int(handle.read().split()[1]) * self.PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def _poll(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> float:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())
        return round(self.peak / 2**20, 1)


# The last exception a stage raised in this process. What reaches the caller may not
# carry it: when the orchestrator cannot record the failure (its database on the same full
# disk), it raises its own error with the chain cut; the CLI then reports this one.
LAST_FAILURE: list[BaseException] = []


def mark_stage(exc: BaseException, stage: str) -> None:
    """Remember on the exception which stage raised it (the CLI says so)."""
    LAST_FAILURE[:] = [exc]
    if getattr(exc, "recpipe_stage", None) is None:
        try:
            exc.recpipe_stage = stage  # type: ignore[attr-defined]
            exc.add_note(f"recpipe stage: {stage}")
        except (AttributeError, TypeError):  # pragma: no cover - exotic exception types
            pass
