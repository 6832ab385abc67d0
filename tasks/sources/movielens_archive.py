"""MovieLens archives: the releases, their checksums, download, cache and verification.

Every input is verified or explicitly accepted unverified, never skipped quietly:

* a zip is checked against ``MovieLensConfig.sha256`` when the user pins one, else
  against the release's ``zip_sha256``;
* the data files inside (zip or extracted folder) against the release's
  ``member_sha256``;
* with nothing to check against, loading stops with a ``DataError`` unless ``verify``
  is false (``--no-verify``), and the stats then say "NOT verified".

Only checksums verified against a real copy are recorded: the ML-100K data files (checked
against the extracted reference copy). No zip checksum is recorded: none could be checked
against a real download here, and GroupLens publishes none we could read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tasks.config import MovieLensConfig
from tasks.errors import DataError

log = logging.getLogger(__name__)


class DownloadError(DataError):
    """The archive could not be fetched; worth a retry, unlike bad data."""


@dataclass(frozen=True)
class Release:
    name: str  # archive stem, e.g. "ml-100k"
    layout: str  # "100k", "1m" or "csv"
    zip_sha256: str | None = None
    member_sha256: dict[str, str] = field(default_factory=dict)


RELEASES = {
    "movielens-100k": Release(
        "ml-100k",
        "100k",
        member_sha256={
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "6dd287831559152bea892eb27694a492ff14926ac5f7a16e5f8c4968e6fe13c3",
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
            "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        },
    ),
    "movielens-1m": Release("ml-1m", "1m"),
    "movielens-20m": Release("ml-20m", "csv"),
    "movielens-latest-small": Release("ml-latest-small", "csv"),
}
_MEMBERS = {
    "100k": ("u.data", "u.item", "u.user", "u.genre"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}


class ReleaseCopy:
    """The release's files, from a zip (members under ``<name>/``) or an extracted folder."""

    def __init__(self, path: Path, release: Release) -> None:
        self.path, self.release = path, release
        try:
            self.zip = zipfile.ZipFile(path) if path.is_file() else None
        except zipfile.BadZipFile as exc:
            raise DataError(
                f"{path}: not a zip archive ({exc}); expected the {release.name}.zip from "
                "GroupLens or its extracted folder; download it again or check --path"
            ) from exc
        missing = [m for m in _MEMBERS[release.layout] if not self.exists(m)]
        if missing:
            raise DataError(
                f"{path}: {release.name} files {missing} not found; expected the "
                f"{release.name} zip from GroupLens or its extracted folder; check --path"
            )

    def _locate(self, member: str) -> str | Path | None:
        if self.zip is not None:
            names = set(self.zip.namelist())
            return next((n for n in (f"{self.release.name}/{member}", member) if n in names), None)
        for candidate in (self.path / member, self.path / self.release.name / member):
            if candidate.is_file():
                return candidate
        return None

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def exists(self, member: str) -> bool:
        return self._locate(member) is not None

    def open(self, member: str) -> IO[bytes]:
        where = self._locate(member)
        if where is None:
            raise DataError(f"{self.path}: {self.release.name} file {member} not found")
        return self.zip.open(str(where)) if self.zip is not None else open(where, "rb")


def sha256_of(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def locate_archive(source: str, config: MovieLensConfig, cache_dir: Path) -> tuple[Path, str]:
    """``(zip or folder, how it is verified)``; downloads into ``cache_dir`` when needed.

    Checks the zip's sha256 here; the data files' checksums are checked by the caller,
    ``load_movielens``, when the returned sentence says "data files".
    """
    release = RELEASES[source]
    expected = (config.sha256 or release.zip_sha256 or "").lower() or None
    if config.verify and expected is None and not release.member_sha256:
        raise DataError(
            f"{release.name}: no checksum is known for this release, so a download or copy "
            "cannot be verified; expected a sha256 to check it against; pin one you trust "
            "with --sha256 (movielens.sha256), or accept it unverified with --no-verify "
            "(movielens.verify = false)"
        )
    if config.path is not None:
        path = Path(config.path).expanduser()
        if not path.exists():
            raise DataError(
                f"{path} does not exist; expected the {release.name}.zip from GroupLens or "
                "its extracted folder; check --path"
            )
        if path.is_dir() and config.sha256:
            raise DataError(
                f"{path} is a folder, but movielens.sha256 pins a zip checksum; expected the "
                f"{release.name}.zip itself; pass the zip, or drop --sha256"
            )
        origin = "local copy"
    else:
        path = cache_dir / f"{release.name}.zip"
        origin = "cached download"
        if not path.is_file():
            _download(f"{config.base_url.rstrip('/')}/{release.name}.zip", path, config)
            origin = "download"
    if path.is_file() and expected:
        with open(path, "rb") as handle:
            actual = sha256_of(handle)
        if actual != expected:
            raise DataError(
                f"{path.name}: sha256 {actual} does not match the expected {expected}; the "
                f"{origin} is corrupt or not the official archive; delete {path} and run "
                "again, or check --path / --sha256"
            )
        return path, f"{origin}: zip sha256 verified"
    if release.member_sha256 and config.verify:
        return path, f"{origin}: data files' sha256 verified"
    log.warning("%s: %s accepted without checksum verification (--no-verify)", path, origin)
    return path, f"{origin}: NOT verified (verify=false)"


def _download(url: str, target: Path, config: MovieLensConfig) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    log.info("downloading %s to %s", url, target)
    try:
        with (
            urllib.request.urlopen(url, timeout=config.timeout_seconds) as response,
            open(part, "wb") as out,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url} ({exc}); expected the GroupLens archive; check the "
            f"network, or download it yourself and pass its path with --path"
        ) from exc
    if not zipfile.is_zipfile(part):
        part.unlink(missing_ok=True)
        raise DataError(
            f"{url} did not return a zip archive; expected {target.name}; check "
            "movielens.base_url, or download it yourself and pass --path"
        )
    os.replace(part, target)


def verify_members(copy: ReleaseCopy, verification: str) -> None:
    """Check the data files' sha256 when ``locate_archive`` said they are to be checked."""
    if "data files" not in verification:
        return
    for member, expected in copy.release.member_sha256.items():
        with copy.open(member) as handle:
            actual = sha256_of(handle)
        if actual != expected:
            raise DataError(
                f"{copy.path}: {member} has sha256 {actual}, expected {expected}; the copy is "
                f"modified or corrupt; fetch {copy.release.name} again from GroupLens"
            )
