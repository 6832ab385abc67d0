"""The process environment a recpipe command sets before the libraries are imported.

Quiet by default: the libraries' own chatter is silenced where it starts, and everything
they log keeps going where it is kept (Prefect's API, so its UI shows every log line).
``verbose=True`` leaves every library at its defaults. What each setting hides:

* TensorFlow: ``TF_CPP_MIN_LOG_LEVEL=2`` hides its C++ INFO lines (the CPU-instructions
  notice). The oneDNN notice ("oneDNN custom operations are on ...") and absl's "All log
  messages before absl::InitializeLog() is called" are written while the shared libraries
  load, before any log level applies (TF 2.21; no environment variable hides them); they
  are dropped from stderr while ``tensorflow`` is imported, every other line passes.
  ``TF_ENABLE_ONEDNN_OPTS`` is left alone: turning oneDNN off would change the kernels
  that compute the models' numbers, not just the notice. absl's Python logger is raised to
  ERROR.
* MLflow: ``MLFLOW_LOGGING_LEVEL=WARNING`` for its ``mlflow`` loggers ("Creating initial
  MLflow database tables", "Validating input example against model signature"); its
  registry messages ("Successfully registered model", "Registered model ... already exists.
  Creating a new version", "Created version ...") are no log records but ``eprint`` calls
  in ``mlflow.tracking._model_registry.fluent``, so that module's ``eprint`` drops them;
  no artifact progress bars.
* Prefect: its console handler shows WARNING and above
  (``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL``): no per-task "Finished in state
  Completed()", no temporary-server notices; flow and task warnings and errors still show,
  and the API handler still sends every record to the server.
* Great Expectations: no progress bars (set in its context config, expectations/runner.py).
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}
#: Lines TensorFlow's shared libraries print while they load (dropped from stderr then).
TF_LOAD_NOISE = re.compile(
    rb"oneDNN custom operations are on"
    rb"|All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|cpu_feature_guard\.cc"
    rb"|rebuild TensorFlow with the appropriate compiler flags"
)
#: MLflow's registry messages (``eprint``, not logging).
MLFLOW_REGISTRY_CHATTER = re.compile(
    r"^(Successfully registered model |Registered model .* already exists\. Creating a new "
    r"version|Created version )"
)


def private_files() -> None:
    """Files and folders this process creates are its user's alone (0600 / 0700): the
    workspace holds user ids, histories and databases. A stricter umask is kept."""
    os.umask(os.umask(0) | 0o077)


def prepare_environment(
    workspace: Path, temporary_server: bool = True, verbose: bool = False
) -> None:
    """Defaults for the libraries, set before they are imported; the user's settings win.

    ``temporary_server=False`` for commands that need a real Prefect server (serve,
    trigger, status): PREFECT_HOME is left alone so the user's profile (and its
    PREFECT_API_URL) is found. ``verbose=False`` silences the libraries' chatter (see the
    module docstring); ``verbose=True`` leaves them at their defaults.
    """
    private_files()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # No usage reporting: nightly batch jobs often run without internet access.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        quiet_libraries()
    # Without a Prefect server configured, Prefect starts a temporary one; keep its
    # database in the workspace and give it time to start on a small machine.
    if (
        temporary_server
        and "PREFECT_API_URL" not in os.environ
        and "PREFECT_HOME" not in os.environ
    ):
        (workspace / "prefect").mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(workspace / "prefect")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if temporary_server and "PREFECT_API_URL" not in os.environ:
        # That temporary server must not outlive this process, even on kill -9.
        from flows.prefect_server import tie_temporary_server_to_process

        tie_temporary_server_to_process()


def quiet_libraries() -> None:
    """The quiet settings: environment defaults now, and hooks that run when TensorFlow and
    MLflow are imported (right away for one already imported). Idempotent."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    _HOOKS.install()
    _HOOKS.around("tensorflow", _quiet_tensorflow_import)
    _HOOKS.around("mlflow", _quiet_mlflow_registry)


# -- what runs around an import -----------------------------------------------------------
@contextmanager
def _quiet_tensorflow_import() -> Iterator[None]:
    with _stderr_without(TF_LOAD_NOISE):
        yield
    logging.getLogger("absl").setLevel(logging.ERROR)


@contextmanager
def _quiet_mlflow_registry() -> Iterator[None]:
    yield
    # The SQL store logs each database error with its traceback, then raises it: the
    # raised error is reported (one line, the traceback in the log), the log record is noise.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    fluent = sys.modules.get("mlflow.tracking._model_registry.fluent")
    eprint = getattr(fluent, "eprint", None)
    if eprint is None or getattr(eprint, "recpipe_quiet", False):
        return

    def quiet_eprint(*args: Any, **kwargs: Any) -> None:
        if args and MLFLOW_REGISTRY_CHATTER.match(str(args[0])):
            return
        eprint(*args, **kwargs)

    quiet_eprint.recpipe_quiet = True  # type: ignore[attr-defined]
    fluent.eprint = quiet_eprint  # type: ignore[union-attr]


@contextmanager
def _stderr_without(noise: re.Pattern[bytes]) -> Iterator[None]:
    """File descriptor 2 through a pipe whose lines matching ``noise`` are dropped (the
    others are passed on as they come); C libraries write there directly."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not noise.search(line):
                    _write_all(saved, line)

    thread = threading.Thread(target=pump, name="recpipe-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's write end: the pump reads to the end
        thread.join(timeout=10)
        os.close(saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


class _ImportHooks(importlib.abc.MetaPathFinder):
    """Runs a context manager around the first import of a module (its loader's
    ``exec_module``); for a module already imported, runs it at once."""

    def __init__(self) -> None:
        self.hooks: dict[str, Callable[[], Any]] = {}

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def around(self, name: str, hook: Callable[[], Any]) -> None:
        if name in sys.modules:
            with hook():
                pass
            return
        self.hooks[name] = hook

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        later = sys.meta_path[sys.meta_path.index(self) + 1 :] if self in sys.meta_path else []
        for finder in later:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.hooks[fullname]  # once
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, hook: Callable[[], Any]) -> None:
        self.loader, self.hook = loader, hook

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module sees its own loader (resource readers and the like ask it).
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        with self.hook():
            self.loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


_HOOKS = _ImportHooks()
