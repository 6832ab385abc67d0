"""Headless Chromium driven over the DevTools protocol, for the screenshot checks.

``Page`` starts Chromium with a fresh profile and no network beyond this machine
(every host name fails to resolve; ``127.0.0.1`` and ``file://`` still load), opens one
URL (waiting until it has loaded), and over the page's DevTools websocket evaluates
JavaScript in it (wait for a condition, read element positions with
``getBoundingClientRect``), dumps its DOM and saves a PNG of the viewport. Positions
need a live page: ``--dump-dom`` alone gives the markup, not where it lies.

    with Page(find_chromium(), url, size=(1366, 900)) as page:
        page.wait_for("document.querySelector('table') !== null")
        x = page.evaluate("document.querySelector('th').getBoundingClientRect().right")
        page.screenshot(Path("shot.png"))
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: No name resolves (so no CDN, no update check); the local server's address still loads.
OFFLINE_RESOLVER = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


def find_chromium() -> str | None:
    """A Chromium (or Chrome) executable on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def chromium_flags(profile: str, size: tuple[int, int]) -> list[str]:
    """Headless, no sandbox (root in containers), nothing fetched in the background."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--host-resolver-rules={OFFLINE_RESOLVER}",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
    ]


class Page:
    """One Chromium page at ``url`` (see the module docstring); a context manager that
    stops the browser (its own process group) on exit."""

    def __init__(self, chromium: str, url: str, size: tuple[int, int] = (1366, 900)) -> None:
        self.chromium, self.url, self.size = chromium, url, size
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen | None = None
        self._socket: Any = None
        self._next_id = 0

    def __enter__(self) -> Self:
        from websockets.sync.client import connect

        self._profile = tempfile.TemporaryDirectory(prefix="recpipe-chromium-")
        profile = self._profile.name
        command = [
            self.chromium,
            *chromium_flags(profile, self.size),
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "about:blank",
        ]
        log = Path(profile).parent / f"{Path(profile).name}.log"
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._log = log
        port = self._debugging_port(Path(profile) / "DevToolsActivePort", timeout=60)
        target = self._page_target(port, timeout=30)
        self._socket = connect(target, max_size=None, open_timeout=30)
        self.call("Page.enable")
        self.call("Page.navigate", url=self.url)
        loaded = "location.href !== 'about:blank' && document.readyState === 'complete'"
        if not self.wait_for(loaded, timeout=60):
            raise RuntimeError(f"Chromium did not load {self.url} within 60 s")
        return self

    def _debugging_port(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.chromium} exited with code {self._process.returncode}: "
                    + self._log.read_text(errors="replace")[-2000:]
                )
            if path.is_file() and (lines := path.read_text().split()):
                return int(lines[0])
            time.sleep(0.2)
        raise RuntimeError(f"{self.chromium} opened no DevTools port within {timeout:.0f} s")

    def _page_target(self, port: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                targets = json.load(r)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.2)
        raise RuntimeError(f"Chromium showed no page for {self.url} within {timeout:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)  # the group this context started
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=15)
        if self._profile is not None:
            self._profile.cleanup()
            self._log.unlink(missing_ok=True)

    # -- the protocol ---------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are skipped)."""
        self._next_id += 1
        ident = self._next_id
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=120))
            if message.get("id") != ident:
                continue
            if "error" in message:
                raise RuntimeError(f"DevTools {method}: {message['error']}")
            return dict(message.get("result") or {})

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serializable values)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            raise RuntimeError(f"JavaScript error in {self.url}: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90.0) -> bool:
        """Poll until ``expression`` is truthy (an error while the page changes documents
        counts as not yet); False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"Boolean({expression})"):
                    return True
            except RuntimeError:  # the page was between documents
                pass
            time.sleep(0.5)
        return False

    def dom(self) -> str:
        """The page's markup as its scripts left it."""
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, png: Path) -> Path:
        """A PNG of the viewport (the window's size)."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        png.write_bytes(base64.b64decode(data))
        return png
