"""What MLflow's UI shows of a workspace: a PNG of the experiment page and a check of it.

    python -m flows.bench.mlflow_screenshot --workspace W [--out shot.png] [--experiment NAME]

Starts ``mlflow ui`` on 127.0.0.1 (a free port) on the workspace's store, opens the
experiment's page as recpipe links it (``tasks.tracking.ui.experiment_url``) in headless
Chromium (``flows.bench.screenshot_chromium``: a fresh profile, so no remembered columns or
toggles; no network beyond this machine) in a 1366x900 window, saves a screenshot and
the rendered DOM, and checks that the runs table has an NDCG column (``ndcg_at_<k>``) with
values and that the NDCG and Recall column headers can be seen without scrolling: within
the window's width and neither clipped by the grid nor covered (their positions read from
the live page over the DevTools protocol). Prints the URL, the metric columns found, the
headers' x-positions and the PNG's path; exits 0 when the
check passes, 1 when it fails, 2 when something it needs is missing (Chromium:
``apt-get install -y chromium``; a workspace without an MLflow store).

Make a workspace with ``recpipe --workspace W run --demo-users 150 --demo-items 100
--models popularity,ease --k 5``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Self

from flows.bench.screenshot_chromium import Page, find_chromium

__all__ = ["Header", "find_chromium", "main", "out_of_view", "runs_table"]

NDCG_COLUMN = re.compile(r"^metrics\.`(ndcg_at_\d+)`$")
#: A laptop's screen: the metrics must be on it without scrolling sideways.
VIEWPORT = (1366, 900)
#: The columns that must lie within the viewport's width.
MUST_SEE = ("ndcg_at_", "recall_at_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowUi:
    """``mlflow ui`` on 127.0.0.1 for a store, in a process group of its own (stopped with
    the context, also its workers)."""

    def __init__(self, store_uri: str, port: int, log: Path) -> None:
        self.store_uri, self.port, self.log_path = store_uri, port, log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            self.store_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_ready(timeout=120)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow ui exited with code {self.process.returncode}; its output:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow ui did not answer on {self.url} within {timeout:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group this context started
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


#: Where each runs-table column header lies in the page, whether it can be seen there
#: (the element at its left and right ends is the header, not the grid's clipping or a
#: panel above it), and the viewport's width.
_HEADERS_JS = """
(() => {
  const seen = (h, x, y) =>
    x >= 0 && x < window.innerWidth && h.contains(document.elementFromPoint(x, y));
  return {
    width: window.innerWidth,
    headers: Array.from(document.querySelectorAll('[role=columnheader][col-id]')).map(h => {
      const r = h.getBoundingClientRect();
      const y = (r.top + r.bottom) / 2;
      return {column: h.getAttribute('col-id'), left: r.left, right: r.right,
              visible: seen(h, r.left + 2, y) && seen(h, r.right - 2, y)};
    }),
  };
})()
"""
#: Metric cells with figures: the grid has drawn the runs (not only its skeleton).
_READY_JS = (
    "Array.from(document.querySelectorAll('[role=gridcell][col-id^=\"metrics.\"]'))"
    ".some(c => /\\d/.test(c.innerText))"
)


@dataclass(frozen=True)
class Header:
    """A column header of the runs table and where the browser laid it out (CSS px)."""

    column: str
    left: float
    right: float
    visible: bool  # both ends on screen and not covered


def out_of_view(headers: list[Header], width: int) -> list[str]:
    """Why each column of :data:`MUST_SEE` cannot be read without scrolling: missing, or
    no header of it both visible and within ``width``; empty when all can be."""
    problems = []
    for prefix in MUST_SEE:
        shown = [h for h in headers if h.column.startswith(f"metrics.`{prefix}")]
        if not shown:
            problems.append(f"no {prefix}K column header")
        elif not any(h.visible and h.left >= 0 and h.right <= width for h in shown):
            first = shown[0]
            problems.append(
                f"{first.column} lies at x {first.left:.0f}..{first.right:.0f}, not in view "
                f"in the {width} px window (clipped, covered or a sideways scroll away)"
            )
    return problems


def render(
    chromium: str, url: str, png: Path, size: tuple[int, int] = VIEWPORT
) -> tuple[str, list[Header], int]:
    """Open ``url`` at window ``size``; screenshot it to ``png``; the DOM after the page's
    scripts ran, the column headers' positions and the viewport's width."""
    with Page(chromium, url, size=size) as page:
        if not page.wait_for(_READY_JS, timeout=120):
            print("note: no metric cell with a figure appeared within 120 s")
        time.sleep(1.0)  # let the grid settle its column widths
        layout = page.evaluate(_HEADERS_JS)
        page.screenshot(png)
        dom = page.dom()
    headers = [
        Header(h["column"], float(h["left"]), float(h["right"]), bool(h["visible"]))
        for h in layout["headers"]
    ]
    return dom, headers, int(layout["width"])


@dataclass
class RunsTable:
    """The runs table as rendered: metric columns and the text of their cells."""

    cells: dict[str, list[str]] = field(default_factory=dict)

    @property
    def metric_columns(self) -> list[str]:
        return [c[len("metrics.`") : -1] for c in self.cells if c.startswith("metrics.`")]

    def ndcg_values(self) -> dict[str, list[float]]:
        out = {}
        for column, texts in self.cells.items():
            match = NDCG_COLUMN.match(column)
            if match:
                numbers = [re.match(r"\s*(-?\d+(?:\.\d+)?)", t) for t in texts]
                out[match.group(1)] = [float(m.group(1)) for m in numbers if m]
        return out


class _Cells(HTMLParser):
    """Collects the text of ag-grid cells and headers by their ``col-id``."""

    def __init__(self) -> None:
        super().__init__()
        self.table = RunsTable()
        self._stack: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        column = attributes.get("col-id")
        if column and attributes.get("role") in ("gridcell", "columnheader"):
            self.table.cells.setdefault(column, [])
            if attributes.get("role") == "gridcell":
                self.table.cells[column].append("")
                self._stack.append(column)
                return
        self._stack.append(None)

    def handle_endtag(self, tag: str) -> None:
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        column = next((c for c in reversed(self._stack) if c), None)
        if column is not None:
            self.table.cells[column][-1] += data


def runs_table(dom: str) -> RunsTable:
    parser = _Cells()
    parser.feed(dom)
    return parser.table


def experiment_id(store_uri: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tracking_uri=store_uri).get_experiment_by_name(name)
    if experiment is None:
        raise LookupError(f"no experiment {name!r} in {store_uri}; run the nightly flow first")
    return experiment.experiment_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.bench.mlflow_screenshot",
        description="Screenshot and check the MLflow experiment page of a recpipe workspace.",
    )
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--experiment", default="recpipe-nightly")
    parser.add_argument(
        "--out", type=Path, help="PNG path (default: <workspace>/mlflow-screenshot.png)"
    )
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    from tasks.storage.workspace import Workspace
    from tasks.tracking import ui

    workspace = Workspace.at(args.workspace)
    db = args.workspace / "mlflow" / "mlflow.db"
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium on PATH; install it: apt-get update && apt-get install -y chromium")
        return 2
    if not db.is_file():
        print(f"no MLflow store at {db}; make a workspace with 'recpipe --workspace W run'")
        return 2
    png = (args.out or args.workspace / "mlflow-screenshot.png").resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    exp_id = experiment_id(workspace.mlflow_uri, args.experiment)
    log = png.with_suffix(".mlflow-ui.log")
    with MlflowUi(workspace.mlflow_uri, args.port or free_port(), log) as server:
        url = ui.experiment_url(server.url, exp_id)
        dom, headers, width = render(chromium, url, png)
    png.with_suffix(".html").write_text(dom)
    table = runs_table(dom)
    ndcg = table.ndcg_values()
    print(f"page        {url}")
    print(f"screenshot  {png} ({VIEWPORT[0]}x{VIEWPORT[1]})")
    print(f"DOM         {png.with_suffix('.html')}")
    print(f"metric columns: {', '.join(table.metric_columns) or 'none'}")
    for column, values in ndcg.items():
        print(f"  {column}: {len(values)} cells with values {values}")
    print(f"column headers (x in CSS px; the viewport is {width} px wide):")
    for header in headers:
        seen = "visible" if header.visible else "hidden "
        print(f"  {header.left:7.1f} .. {header.right:7.1f}  {seen}  {header.column}")
    failures = []
    if not any(ndcg.values()):
        failures.append("the runs table shows no NDCG column with values")
    failures += out_of_view(headers, width)
    for failure in failures:
        print(f"FAIL: {failure}")
    if failures:
        return 1
    print(f"OK: the runs table shows NDCG@K and Recall@K within {width} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
