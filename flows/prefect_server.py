"""Prefect's temporary API server dies with the process that started it, even on kill -9.

With no ``PREFECT_API_URL``, Prefect 3 starts a temporary ("ephemeral") API server the
first time anything needs the API: ``get_client()``, the events and logs clients all call
``SubprocessASGIServer().start()`` in ``prefect.server.api.server``, whose
``_run_uvicorn_command`` runs ``subprocess.Popen([sys.executable, "-m", "uvicorn", ...])``.
Prefect stops that process from an ``atexit`` handler, which never runs when the process
is killed with SIGKILL (or by the kernel's OOM killer): the server, about 225 MB, was
orphaned and ran forever.

The fix, on Linux: the server is started with ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so
the kernel kills it when its parent dies. Two details make that hold:

* PDEATHSIG fires when the *thread* that forked the child ends, not the process, and
  Prefect may start the server from any thread (a flow's thread, the events worker's,
  a task runner's). So every fork goes to one daemon thread of ours ("lifeline") that
  waits for work and never returns: it ends only when the process does. (A
  ``ThreadPoolExecutor`` would not do: its threads are joined at interpreter exit,
  before Prefect's own ``atexit`` stop, and would SIGKILL the server on a normal exit.)
* The child sets PDEATHSIG itself through a tiny trampoline, ``python -c <code>
  <parent pid> <Prefect's argv...>``, which calls prctl, checks that its parent is still
  the one that forked it (closing the race where the parent dies before prctl), then
  ``execvp``-s Prefect's exact command. PDEATHSIG survives exec, and the pid stays the
  same, so Prefect's Popen object, its restart-on-port-clash check (exit code 3) and its
  SIGTERM on normal exit all work unchanged. A trampoline rather than ``preexec_fn``:
  ``preexec_fn`` runs Python in a forked child of a threaded process, which the
  subprocess documentation calls unsafe (it can deadlock).

How it hooks in, and why this way. Prefect offers no hook for the server's Popen, so
the choice was between (a) wrapping Prefect's spawn and (b) starting a server of our own
and exporting ``PREFECT_API_URL``. (b) was rejected: it would start the server eagerly
(about 15 s, even for commands that never touch Prefect), copy Prefect's private server
flags (``PREFECT__SERVER_EPHEMERAL`` and friends, which select the services an ephemeral
server runs), and turn the process into a "real server" client, which changes what
Prefect and ``recpipe`` decide from ``PREFECT_API_URL``. (a) keeps Prefect's laziness,
its command line and its environment, whatever they become in a later release: the only
thing replaced is the name ``subprocess`` inside ``prefect.server.api.server``, by a
stand-in module whose ``Popen`` forks on the lifeline thread through the trampoline and
forwards everything else (``TimeoutExpired``, ...) to the real module. In prefect 3.9.1
that ``Popen`` is called in exactly one place, ``_run_uvicorn_command``. Importing that
module costs about 4 s, so the patch is applied by an import hook when Prefect first
imports it (at once if it already has been), and ``recpipe --help`` stays fast.

The check before patching is structural rather than a version pin: the module still
imports the real ``subprocess`` and ``SubprocessASGIServer._run_uvicorn_command`` still
calls ``Popen``. If not, a warning says so and Prefect is left as it is; the test
``tests/flows/test_server_lifetime.py`` catches a release that spawns differently.
Not Linux (no prctl): nothing is installed, Prefect behaves as before.

The other way round, a server that dies while the process goes on (killed, out of
memory) left the run waiting on an API that will never answer: Prefect retries its
calls and warns every few seconds, for ever. A watcher thread waits on every server
this process starts; when one exits without Prefect having stopped it, the callbacks
given to :func:`on_server_death` run (the CLI's says so in one line and ends the
command). Without a callback nothing happens, as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

SERVER_MODULE = "prefect.server.api.server"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Runs in the child before Prefect's command: argv is [-c, parent pid, command...].
# PR_SET_PDEATHSIG is 1 in <linux/prctl.h>.
_TRAMPOLINE = """\
import ctypes, os, signal, sys
parent, argv = int(sys.argv[1]), sys.argv[2:]
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
except (AttributeError, OSError):
    pass
if os.getppid() != parent:
    sys.exit("recpipe: the process that started this Prefect server has already exited")
os.execvp(argv[0], argv)
"""


_DEATH_CALLBACKS: list[Callable[[int, int | None], None]] = []
PORT_IN_USE = 3  # Prefect starts the server again on another port


def on_server_death(callback: Callable[[int, int | None], None]) -> None:
    """Call ``callback(pid, exit code)`` when a temporary server this process started
    exits while the process still runs and Prefect did not stop it."""
    _DEATH_CALLBACKS.append(callback)


class _ServerProcess(subprocess.Popen):
    """Prefect's server process, which knows when Prefect itself stops it."""

    stopping = False

    def terminate(self) -> None:
        self.stopping = True
        super().terminate()

    def kill(self) -> None:
        self.stopping = True
        super().kill()


def _watch(process: _ServerProcess) -> None:
    """Wait for the server to exit; an exit nobody asked for runs the callbacks."""

    def wait() -> None:
        while process.poll() is None:
            time.sleep(0.5)
        code = process.returncode
        if process.stopping or code == PORT_IN_USE or sys.is_finalizing():
            return
        for callback in list(_DEATH_CALLBACKS):
            callback(process.pid, code)

    threading.Thread(target=wait, name="recpipe-server-watch", daemon=True).start()


def tie_temporary_server_to_process() -> bool:
    """Make any temporary Prefect server this process starts die when the process dies.

    Lazy and idempotent: nothing is imported or started here; Prefect still starts its
    server only when it needs one. True when the tie is (or will be) in place; False
    where it cannot be (not Linux), where Prefect behaves as before.
    """
    if not sys.platform.startswith("linux"):
        return False
    module = sys.modules.get(SERVER_MODULE)
    if module is not None:
        return _patch(module)
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
    return True


# -- the stand-in for ``subprocess`` inside Prefect's server module -----------------------
class _TiedSubprocess(types.ModuleType):
    """``subprocess``, except that ``Popen`` of an argv list starts a child tied to us."""

    def __init__(self) -> None:
        super().__init__("subprocess", subprocess.__doc__)

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args: Any, *rest: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        if (
            isinstance(args, (str, bytes, os.PathLike))
            or not isinstance(args, Sequence)
            or not args
            or kwargs.get("shell")
            or kwargs.get("executable")
        ):
            return subprocess.Popen(args, *rest, **kwargs)  # not an argv list: as is
        argv = [sys.executable, "-c", _TRAMPOLINE, str(os.getpid()), *map(os.fsdecode, args)]
        log = _server_log() if "stdout" not in kwargs and "stderr" not in kwargs else {}
        kwargs.update(log)
        try:
            try:
                lifeline = _lifeline()
            except RuntimeError:  # no new threads at interpreter shutdown: fork from this one
                return subprocess.Popen(argv, *rest, **kwargs)
            process = lifeline.call(lambda: _ServerProcess(argv, *rest, **kwargs))
            _watch(process)
            return process
        finally:
            if log:
                log["stdout"].close()  # the child has its own copy


def _server_log() -> dict[str, Any]:
    """The server's own output (uvicorn's errors, with tracebacks) goes to
    ``$PREFECT_HOME/server.log``, not onto the command's stderr; inherited when that file
    cannot be opened."""
    home = os.environ.get("PREFECT_HOME")
    if not home:
        return {}
    try:
        handle = open(Path(home) / "server.log", "ab")  # noqa: SIM115 - the child holds it
    except OSError:
        return {}
    return {"stdout": handle, "stderr": subprocess.STDOUT}


def _patch(module: types.ModuleType) -> bool:
    """Swap the stand-in into Prefect's server module, if it still spawns as we expect."""
    current = getattr(module, "subprocess", None)
    if isinstance(current, _TiedSubprocess):
        return True
    server = getattr(module, "SubprocessASGIServer", None)
    spawn = getattr(server, "_run_uvicorn_command", None)
    if current is not subprocess or "Popen" not in getattr(
        getattr(spawn, "__code__", None), "co_names", ()
    ):
        _log.warning(
            "recpipe: this Prefect (%s) starts its temporary server differently from "
            "prefect 3.9 (SubprocessASGIServer._run_uvicorn_command calling "
            "subprocess.Popen), so the server is not tied to this process and may outlive "
            "it if it is killed; set PREFECT_API_URL to a server you run to avoid it",
            _prefect_version(),
        )
        return False
    module.subprocess = _TiedSubprocess()  # type: ignore[attr-defined]
    return True


def _prefect_version() -> str:
    prefect = sys.modules.get("prefect")
    return str(getattr(prefect, "__version__", "unknown version"))


class _PatchOnImport:
    """A one-shot import hook: patch Prefect's server module right after it executes."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != SERVER_MODULE:
            return None
        for finder in [f for f in sys.meta_path if f is not self]:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return None
        execute = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            execute(module)
            _patch(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)

        loader.exec_module = exec_module  # this loader instance serves only this spec
        return spec


# -- the thread that forks ----------------------------------------------------------------
class _Lifeline:
    """A daemon thread that lives as long as the process and runs the forks given to it."""

    def __init__(self) -> None:
        self._jobs: SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name="recpipe-server-lifeline", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        while True:  # never returns: its end would fire PDEATHSIG in the children
            job, future = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as exc:  # noqa: BLE001 - the caller gets it
                    future.set_exception(exc)

    def call(self, job: Callable[[], _T]) -> _T:
        if threading.current_thread() is self._thread:
            return job()
        future: Future[_T] = Future()
        self._jobs.put((job, future))
        return future.result()


_LIFELINE: _Lifeline | None = None
_LIFELINE_LOCK = threading.Lock()


def _lifeline() -> _Lifeline:
    """This process's lifeline thread, started on first use."""
    global _LIFELINE
    with _LIFELINE_LOCK:
        if _LIFELINE is None:
            _LIFELINE = _Lifeline()
        return _LIFELINE


def _forget_lifeline() -> None:
    """In a forked child: threads do not survive a fork, so start afresh when needed."""
    global _LIFELINE, _LIFELINE_LOCK
    _LIFELINE, _LIFELINE_LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lifeline)
