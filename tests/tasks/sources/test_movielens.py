"""MovieLens: local folder / zip / cached download, checksums, the three file layouts.

Tests that need the real ML-100K use the shared reference copy (never copied into the
repo; zips built from it live in tmp_path only) and skip when it is absent. Downloads are
exercised through a file:// base URL: no network.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.config import IngestConfig, MovieLensConfig, ValidateConfig
from tasks.errors import DataError
from tasks.ingest import ingest
from tasks.sources.movielens import load_movielens
from tasks.validate import validate

ML100K = Path(
    os.environ.get("RECPIPE_ML100K")
    or Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "ml-100k"
).resolve()
needs_ml100k = pytest.mark.skipif(
    not (ML100K / "u.data").is_file(),
    reason=f"MovieLens 100K not found at {ML100K} (set RECPIPE_ML100K to the extracted "
    "ml-100k folder; its licence forbids copying it into the repo)",
)
ML100K_FILES = ("u.data", "u.item", "u.user", "u.genre")


def make_zip(target: Path, stem: str, members: dict[str, bytes]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{stem}/{name}", data)
    return target


def ml100k_members() -> dict[str, bytes]:
    return {name: (ML100K / name).read_bytes() for name in ML100K_FILES}


@needs_ml100k
def test_ml100k_folder_is_verified_and_read(tmp_path) -> None:
    data = load_movielens("movielens-100k", MovieLensConfig(path=ML100K), tmp_path)
    assert (len(data.interactions), len(data.items), len(data.users)) == (100_000, 1682, 943)
    assert data.interactions["user_id"].dtype == "str"
    assert data.interactions["timestamp"].min() >= pd.Timestamp("1997-09-01", tz="UTC")
    assert set(data.interactions["value"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    toy = data.items.set_index("item_id").loc["1"]
    assert (toy.title, toy.year, toy.genres) == (
        "Toy Story (1995)",
        1995,
        "Animation|Children's|Comedy",
    )
    # Item 267 is a placeholder ("unknown", no date): kept, marked, interactions kept.
    unknown = data.items.set_index("item_id").loc["267"]
    assert unknown.metadata_missing and pd.isna(unknown.title) and pd.isna(unknown.year)
    assert data.stats["items_metadata_missing"] == ["267"]
    assert data.stats["interactions_on_items_metadata_missing"] == 9
    assert "sha256 verified" in data.stats["checksum"]
    assert data.users.set_index("user_id").loc["1"].tolist() == [24, "M", "technician", "85711"]


@needs_ml100k
def test_ml100k_download_is_cached_and_verified(tmp_path) -> None:
    mirror = tmp_path / "mirror"
    make_zip(mirror / "ml-100k.zip", "ml-100k", ml100k_members())
    config = MovieLensConfig(base_url=mirror.as_uri())
    cache = tmp_path / "cache"
    first = load_movielens("movielens-100k", config, cache)
    assert (cache / "ml-100k.zip").is_file() and not list(cache.glob("*.part"))
    assert first.stats["checksum"].startswith("download: data files' sha256 verified")
    (mirror / "ml-100k.zip").unlink()  # the second run must not need the mirror
    second = load_movielens("movielens-100k", config, cache)
    assert second.stats["checksum"].startswith("cached download")
    assert len(second.interactions) == 100_000


@needs_ml100k
def test_a_modified_data_file_is_refused(tmp_path) -> None:
    members = ml100k_members()
    members["u.data"] = members["u.data"][:-100]
    archive = make_zip(tmp_path / "ml-100k.zip", "ml-100k", members)
    with pytest.raises(DataError, match=r"u.data has sha256 .* expected 06416e59.*modified or"):
        load_movielens("movielens-100k", MovieLensConfig(path=archive), tmp_path)


@needs_ml100k
def test_a_pinned_zip_checksum_is_checked(tmp_path) -> None:
    archive = make_zip(tmp_path / "ml-100k.zip", "ml-100k", ml100k_members())
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    ok = load_movielens("movielens-100k", MovieLensConfig(path=archive, sha256=digest), tmp_path)
    assert ok.stats["checksum"] == "local copy: zip sha256 verified"
    with pytest.raises(DataError, match="does not match the expected 0000"):
        load_movielens("movielens-100k", MovieLensConfig(path=archive, sha256="0" * 64), tmp_path)


def test_unknown_checksum_is_refused_unless_no_verify(tmp_path) -> None:
    config = MovieLensConfig(base_url=(tmp_path / "nowhere").as_uri())
    with pytest.raises(DataError, match=r"no checksum is known.*--sha256.*--no-verify"):
        load_movielens("movielens-1m", config, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before downloading anything
    with pytest.raises(DataError, match=r"could not download .*ml-1m.zip.*--path"):
        load_movielens("movielens-1m", config.model_copy(update={"verify": False}), tmp_path)


def test_ml1m_layout(tmp_path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::5::978300760\n2::20::3::978302109\n")
    (folder / "movies.dat").write_bytes(
        "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    data = load_movielens("movielens-1m", MovieLensConfig(path=folder, verify=False), tmp_path)
    assert data.interactions["item_id"].tolist() == ["10", "20"]
    assert data.interactions["timestamp"][0] == pd.Timestamp(978300760, unit="s", tz="UTC")
    assert data.items["title"].tolist() == ["Amélie (2001)", "Heat (1995)"]
    assert data.items["year"].tolist() == [2001, 1995]
    assert data.users["age"].tolist() == [1, 56] and data.users["zip"].tolist() == [
        "48067",
        "70072",
    ]
    assert data.stats["checksum"] == "local copy: NOT verified (verify=false)"


def test_csv_layout_zip(tmp_path) -> None:
    archive = make_zip(
        tmp_path / "ml-latest-small.zip",
        "ml-latest-small",
        {
            "ratings.csv": (
                b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n"
            ),
            "movies.csv": (
                b"movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
                b'3,"Grumpier Old Men, The",(no genres listed)\n'
            ),
        },
    )
    config = MovieLensConfig(path=archive, verify=False)
    data = load_movielens("movielens-latest-small", config, tmp_path)
    assert data.users is None and data.interactions["value"].tolist() == [4.0, 4.5]
    items = data.items.set_index("item_id")
    assert items.loc["1", "year"] == 1995 and not items.loc["1", "metadata_missing"]
    assert pd.isna(items.loc["3", "genres"]) and items.loc["3", "metadata_missing"]  # no year
    assert data.stats["items_metadata_missing"] == ["3"]


def test_wrong_folder_says_what_is_missing(tmp_path) -> None:
    with pytest.raises(DataError, match=r"ml-1m files \['ratings.dat', 'movies.dat', 'users"):
        load_movielens("movielens-1m", MovieLensConfig(path=tmp_path, verify=False), tmp_path)


@needs_ml100k
def test_ml100k_end_to_end_through_ingest_and_validation(tmp_path) -> None:
    raw = tmp_path / "raw" / "ingest_date=2026-03-02"
    config = IngestConfig(source="movielens-100k", movielens=MovieLensConfig(path=ML100K))
    raw_tables = ingest(config, date(2026, 3, 2), str(raw))
    assert raw_tables.rows == 100_000 and raw_tables.timestamp_unit == "s"
    assert Path(raw_tables.users_path).is_file() and Path(raw_tables.items_path).is_file()
    summary = validate(
        raw_tables.interactions_path,
        str(tmp_path / "validated" / "run_date=2026-03-02"),
        str(tmp_path / "validation"),
        ValidateConfig(),
        "2026-03-02T00:00:00Z",
        items_path=raw_tables.items_path,
        users_path=raw_tables.users_path,
    )
    assert summary.accounting.startswith(
        "interactions: 100000 rows read = 100000 accepted + 0 quarantined + 0 duplicates dropped"
    )
    assert summary.tables["items"]["flagged"] == {
        "item metadata missing (no title or release year)": 1
    }
    assert summary.tables["users"]["rows_accepted"] == 943
    assert Path(summary.data_docs_index).is_file()


def test_a_file_that_is_not_a_zip_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "ml-1m.zip").write_bytes(b"<html>not found</html>")
    config = MovieLensConfig(path=tmp_path / "ml-1m.zip", verify=False)
    with pytest.raises(DataError, match=r"not a zip archive.*download it again"):
        load_movielens("movielens-1m", config, tmp_path)
