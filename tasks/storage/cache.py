"""Cheap re-runs: skip a stage whose inputs are unchanged since it last ran for the date.

Each cacheable stage has a key: a sha256 over everything its output depends on (what
each stage's key covers is written where the stages are wired, ``flows/stage_keys.py``),
and every key includes the code version (the bytes of the tasks/, models/ and
expectations/ sources) and the versions of the libraries that shape the data.

After a stage runs, a marker ``<workspace>/cache/stages/<stage>-<date>.json`` records
the key, the stage's result and the size and mtime of every file in its output folders.
A re-run skips the stage only when the key is equal *and* the outputs are exactly as the
stage left them; anything else (another config ran the date since, a file was deleted or
edited, the code changed) runs the stage again. So does a marker that is not JSON, fails
its schema (``Marker``), or whose result lacks what the stage's callers read (the
stage's :class:`StageResult`): a damaged marker costs one re-run, never a failed night.

Paths inside a marker (the output files, and every string of the result that is a path
under the workspace root) are stored relative to that root and resolved on read, so a
workspace moved or copied with its file times (``mv``, ``cp -a``, ``rsync -a``) reuses
its markers; the keys hash file contents and relative names, never the workspace path. The cache
therefore never hands back a
result whose files are not on disk, lives in the workspace with the data it describes,
and works the same with or without a Prefect server (unlike Prefect result caching,
whose records would not notice a later run overwriting the same folders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

CODE_PACKAGES = ("tasks", "models", "expectations")
DATA_LIBRARIES = ("pandas", "numpy", "pyarrow", "scipy", "great-expectations", "keras")


# -- digests -------------------------------------------------------------------------------
def file_digest(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(path: Path | str | None) -> str | None:
    """sha256 of a file's bytes, or of a folder's relative names and file bytes."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(file_digest(item).encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """The recpipe sources that shape the data, plus Python and library versions."""
    digest = hashlib.sha256(sys.version.encode())
    for name in DATA_LIBRARIES:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            continue
    for name, source in code_files():
        digest.update(name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def code_files() -> list[tuple[str, Path]]:
    """``(path relative to the checkout, file)`` of every source in ``CODE_PACKAGES``."""
    root = Path(__file__).resolve().parents[2]  # this file is tasks/storage/cache.py
    return [
        (source.relative_to(root).as_posix(), source)
        for package in CODE_PACKAGES
        for source in sorted((root / package).rglob("*.py"))
    ]


def key_of(parts: dict) -> str:
    blob = json.dumps({**parts, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def stamps(folders: Iterable[Path | str]) -> dict[str, list[int]]:
    """``{path: [size, mtime_ns]}`` of every file under ``folders``."""
    out = {}
    for folder in folders:
        folder = Path(folder)
        for item in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = item.stat()
            out[str(item)] = [info.st_size, info.st_mtime_ns]
    return out


# -- markers -------------------------------------------------------------------------------
Location = list[str | int]  # keys and list indices leading to a value inside ``result``


class Marker(BaseModel):
    """A marker file. ``extra="forbid"``: only this module writes markers, so an unknown
    field means a file this code did not write (another version, a hand edit); treating
    it as a miss costs one re-run, trusting it could hand back a wrong result."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")  # NaN metrics

    format: Literal[2]
    stage: str
    run_date: date
    key: str
    result: dict[str, Any]
    relative_paths: list[Location]  # where ``result`` holds workspace-relative paths
    outputs: dict[str, tuple[int, int]]  # file (relative to the workspace) -> size, mtime_ns
    flow_run_id: str | None
    recorded_at: datetime


class StageResult(BaseModel):
    """What a stage hands the next: the fields its callers read, typed; anything else it
    reports rides along unchecked (``extra="allow"``) into the run summary. Each stage
    declares its own beside it (``tasks/ingest.py``'s ``IngestResult``, ...). A marker's
    result is validated strictly against the stage's class, so a hit hands back exactly
    the types that were checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def summary(self) -> dict[str, Any]:
        """Every field, declared or not, as the run summary shows it."""
        return self.model_dump()


R = TypeVar("R", bound=StageResult)


def to_relative(value: Any, root: Path, at: Location | None = None) -> tuple[Any, list[Location]]:
    """``value`` with every string that is an absolute path under ``root`` made relative
    to it, and the locations of those strings."""
    at = at or []
    if isinstance(value, dict):
        out, found = {}, []
        for k, v in value.items():
            out[k], sub = to_relative(v, root, [*at, k])
            found += sub
        return out, found
    if isinstance(value, list):
        pairs = [to_relative(v, root, [*at, i]) for i, v in enumerate(value)]
        return [v for v, _ in pairs], [loc for _, sub in pairs for loc in sub]
    if isinstance(value, str) and os.path.isabs(value):
        relative = _under(Path(value), root)
        if relative is not None:
            return relative, [at]
    return value, []


def resolve_paths(result: dict, locations: list[Location], root: Path) -> dict:
    """A copy of ``result`` with the strings at ``locations`` joined onto ``root``;
    ``ValueError`` when a location does not lead to a relative path."""
    result = json.loads(json.dumps(result))
    for location in locations:
        if not location:
            raise ValueError("an empty path location")
        parent = result
        try:
            for step in location[:-1]:
                parent = parent[step]
            value = parent[location[-1]]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"no value at {location} of the result") from None
        if not isinstance(value, str) or os.path.isabs(value):
            raise ValueError(f"the value at {location} is not a relative path: {value!r}")
        parent[location[-1]] = str(root / value)
    return result


def _under(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "the marker"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"


# -- the cache -----------------------------------------------------------------------------
class StageCache:
    """Markers of one run date; ``run`` skips a stage when its key and outputs match.

    ``root``: the workspace root that marker paths are relative to; by default the folder
    two levels above ``marker_dir`` (``Workspace.stage_markers`` is ``<root>/cache/stages``).
    """

    def __init__(
        self,
        marker_dir: Path,
        run_date: date,
        enabled: bool = True,
        flow_run_id: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
        *,
        root: Path | None = None,
    ) -> None:
        self.marker_dir = Path(marker_dir)
        self.root = Path(root) if root is not None else self.marker_dir.parent.parent
        self.run_date = run_date
        self.enabled = enabled
        self.flow_run_id = flow_run_id
        self.log = logger or logging.getLogger(__name__)
        self.hits: dict[str, str] = {}  # stage -> flow run whose outputs were reused
        self.misses: dict[str, str] = {}  # stage -> why it ran

    def marker(self, stage: str) -> Path:
        return self.marker_dir / f"{stage}-{self.run_date.isoformat()}.json"

    def output_stamps(self, outputs: list[Path]) -> dict[str, tuple[int, int]]:
        """``stamps(outputs)`` keyed by paths relative to the root (absolute outside it)."""
        return {
            _under(Path(path), self.root) or path: (size, mtime)
            for path, (size, mtime) in stamps(outputs).items()
        }

    def lookup(
        self, stage: str, key: str, outputs: list[Path], result_type: type[R] | None = None
    ) -> tuple[Marker | None, Any, str]:
        """``(marker, result, "")`` on a hit (the result's paths resolved, as a
        ``result_type`` when one is given), ``(None, None, why not)`` on a miss. Never
        raises for a marker's content: a bad marker is a miss."""
        if not self.enabled:
            return None, None, "cache disabled"
        path = self.marker(stage)
        try:
            marker = Marker.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None, None, "first run for this date"
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            why = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            return None, None, self._bad(path, f"marker unreadable or invalid ({why})")
        if marker.key != key:
            return None, None, "inputs, settings or code changed"
        if marker.outputs != self.output_stamps(outputs):
            return None, None, "its output files changed since"
        try:
            result = resolve_paths(marker.result, marker.relative_paths, self.root)
        except ValueError as exc:
            return None, None, self._bad(path, f"marker invalid ({exc})")
        if result_type is None:
            return marker, result, ""
        try:
            return marker, result_type.model_validate(result, strict=True), ""
        except ValidationError as exc:
            why = f"marker result lacks what {stage} needs ({_first_error(exc)})"
            return None, None, self._bad(path, why)

    def _bad(self, path: Path, why: str) -> str:
        self.log.warning("stage cache: %s: %s; the stage runs again", path, why)
        return why

    def record(self, stage: str, key: str, result: dict, outputs: list[Path]) -> None:
        path = self.marker(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        relative, locations = to_relative(result, self.root)
        marker = Marker(
            format=2,
            stage=stage,
            run_date=self.run_date,
            key=key,
            result=relative,
            relative_paths=locations,
            outputs=self.output_stamps(outputs),
            flow_run_id=self.flow_run_id,
            recorded_at=datetime.now(UTC).replace(microsecond=0),
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(marker.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def forget(self, stage: str) -> None:
        self.marker(stage).unlink(missing_ok=True)

    def run(
        self,
        stage: str,
        parts: dict,
        outputs: list[Path],
        compute: Callable[[], Any],
        still_valid: Callable[[Any], bool] | None = None,
        reuse: bool = True,
        result_type: type[R] | None = None,
    ) -> Any:
        """The stage's result: from its marker when nothing changed, else by ``compute``.

        ``result_type``: the stage's :class:`StageResult` (``compute`` returns one; a hit
        is validated against it), or None for a stage whose result is a plain dict.
        ``still_valid(result)``: an extra check of a hit (e.g. an MLflow run still exists).
        ``reuse=False``: always compute, but leave a marker for a later run that may reuse.
        """
        key = key_of(parts)
        if reuse:
            marker, result, why = self.lookup(stage, key, outputs, result_type)
        else:
            marker, result, why = None, None, "reuse off"
        if marker is not None and still_valid is not None and not still_valid(result):
            marker, why = None, "what it refers to is gone"
        if marker is not None:
            self.hits[stage] = str(marker.flow_run_id)
            self.log.info(
                "%s: skipped, inputs and outputs unchanged since flow run %s (key %s)",
                stage,
                marker.flow_run_id,
                key[:12],
            )
            return result
        self.misses[stage] = why
        self.log.info("%s: runs (%s)", stage, why)
        self.forget(stage)  # a stage that fails half-way must not leave a usable marker
        result = compute()
        if self.enabled:
            plain = result.model_dump() if isinstance(result, BaseModel) else result
            self.record(stage, key, json.loads(json.dumps(plain, default=str)), outputs)
        return result
