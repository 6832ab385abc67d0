"""The feature snapshot, byte for byte in content, as the pandas implementation built it.

The digests below pin the snapshots built for these logs and settings: the vocabularies
(id -> index), every part file's rows in order and its column types, and meta.json. The
Arrow stage was held to the pandas features stage's digests until the demo log they were
taken on changed; a change of the demo's rows takes them again from code that builds the
same snapshots, and so does a change of a hold-out's rule (the ``latest`` case: it now
holds out the users active lately, the narrowest activity window with enough evidence).
A change in any of them (an id sorted differently, a row moved between train and seen, a
reordered tie, a count in meta.json) changes the digest.
``snapshot_summary`` prints the readable side of a snapshot when a digest differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tasks.config import FeatureConfig
from tasks.data.snapshot import save_features
from tasks.features import build_features


@functools.lru_cache(maxsize=4)
def _awkward_log(drop: tuple[str, ...]) -> pd.DataFrame:
    """The demo log, made awkward: ids that sort differently as numbers, bytes and case,
    non-ASCII ids, missing values and event types, timestamp ties across users and
    exact duplicate events (same user, item and time, another value)."""
    from tasks.sources.demo import generate_demo

    log, _ = generate_demo(n_users=300, n_items=120, end="2026-01-01")
    prefixes = np.array(["u", "U", "é", "", "z-", "Ü"], dtype=object)
    user = log["user_id"].str.slice(1).astype(int).to_numpy()
    log["user_id"] = pd.array(
        [f"{prefixes[u % 6]}{u}" for u in user], dtype="str"
    )  # "10" < "9", "U" < "u" < "é"
    log["item_id"] = pd.array(
        [f"i{int(i[1:])}" if int(i[1:]) % 3 else f"Item {i}" for i in log["item_id"]], dtype="str"
    )
    ts = log["timestamp"].astype("datetime64[us, UTC]")
    log["timestamp"] = ts.where(np.arange(len(ts)) % 5 != 0, ts.dt.floor("h"))  # ties
    log["value"] = log["value"].where(np.arange(len(log)) % 11 != 3)  # missing values
    log["event_type"] = log["event_type"].where(np.arange(len(log)) % 7 != 2)  # missing types
    dupes = log.iloc[::97].assign(value=lambda f: 6.0 - f["value"].fillna(3.0))
    log = pd.concat([log, dupes], ignore_index=True)
    return log.drop(columns=list(drop))


def awkward_log(drop: tuple[str, ...] = ()) -> pd.DataFrame:
    return _awkward_log(tuple(drop)).copy()


def snapshot_digest(folder: Path | str) -> str:
    """sha256 over a snapshot's content: each table's part files (names, column types,
    rows in order) and meta.json; not the Parquet bytes, which a writer may change."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in ("users", "items", "train", "valid", "seen"):
        path = folder / f"{name}.parquet"
        if not path.exists():
            digest.update(f"{name}: none".encode())
            continue
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        for file in files:
            table = pq.read_table(file)
            digest.update(f"{name}/{file.name if path.is_dir() else ''}".encode())
            digest.update(str([(f.name, str(f.type)) for f in table.schema]).encode())
            digest.update(json.dumps(table.to_pydict(), default=str).encode())
    meta = json.loads((folder / "meta.json").read_text())
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


def snapshot_summary(folder: Path | str) -> dict:
    folder = Path(folder)
    out = json.loads((folder / "meta.json").read_text())
    for name in ("train", "valid", "seen"):
        if (folder / f"{name}.parquet").exists():
            frame = pd.read_parquet(folder / f"{name}.parquet")
            out[f"{name}_head"] = frame.head(3).to_dict("records")
    return out


def build_in_partitions(frame: pd.DataFrame, tmp_path: Path, config: FeatureConfig) -> Path:
    from tests.tasks.test_features import build_in_partitions as build

    return Path(build(frame, tmp_path, config)["features_dir"])


EVIDENCE = {"min_users": 40, "min_events": 40}

# (settings, columns dropped from the log) -> digest of its snapshot
CASES = {
    "window-parts": ({"validation_days": 5, "part_rows": 2_000}, ()),
    "window-one-part": ({"validation_days": 5}, ()),
    "widened-window": (
        {"validation_days": 1, "part_rows": 3_000, "min_users": 250, "min_events": 250},
        (),
    ),
    "latest": ({"holdout": "latest", "part_rows": 2_500, **EVIDENCE}, ()),
    "returning": ({"holdout": "returning", "return_gap_days": 2.0, "part_rows": 2_000}, ()),
    "min-value": ({"validation_days": 5, "positive": "min_value", "part_rows": 2_000}, ()),
    "user-mean": ({"validation_days": 5, "positive": "user_mean", "part_rows": 2_000}, ()),
    "all": ({"validation_days": 5, "positive": "all", "part_rows": 2_000}, ()),
    "no-event-type": ({"validation_days": 5, "part_rows": 2_000}, ("event_type",)),
    "no-value": ({"validation_days": 5, "part_rows": 2_000}, ("value", "event_type")),
}

PARTITIONED = {
    "window-parts": "67aaccddad0638e9a8a10542cad2df2ec306ab93b1cd9046ffa3fb6cf29a10f2",
    "window-one-part": "6bf46e864108ca837c5864281d0c6d93e1fa502dfe0ceb1c649f88eb0a89fe1b",
    "widened-window": "f0e8447a3151b5f49b8d4675814a8e2fc9d826b5e3cc964aaa6905ca3eb0ac57",
    "latest": "7532364a5bcb15f8a53971ae1876dff71e16b66d5ed9e2876d4471ef451dad5c",
    "returning": "934b3e5cf307a5be48a489a891c940a56d72a58e0ddd8d9c4d160a55ee7a6a2f",
    "min-value": "cbe2be2e1c8ff5594f3c8ab1ff864c1790e22f21b44cc4e331790938488f6fc7",
    "user-mean": "84896416fe9d78ab021156dbe76d034721d8b38e1eb56ee452a171229a486d74",
    "all": "c58707f7e9b1e4383d0868d8a53246fce5dadb6ae75e509b9b1ac48cca3b696e",
    "no-event-type": "21fd68dec7d0f367c9289f3ec524d74085ed57ac808e5cc57580b24f3a59fb0b",
    "no-value": "a40bbdbb8ff6c9e6c0af190d6bb15a8371f3cddcc18ada2e05676b6d72807890",
}

IN_MEMORY = {
    "window-parts": "bb700607519264ae21f43c2fa1fd7640839b11fea1632ec0fba93ae423c05785",
    "latest": "0515972ff31ee04fa05d2535db3d29c8f42f33d636630e2e2d13096ccce0d744",
    "returning": "57adf3987f7f5d84a7dd4ee822caae6ea4babf6a21c7a9c78d970d5f0687710e",
    "user-mean": "292e52fd3c0a76e131d545a6789fb85a906c9eaf538fd369c46fac4923463539",
    "no-value": "254542a2ab25abe91d085550243b12ff68631be2c451d83f26436ae5450b5f3f",
}


@pytest.mark.parametrize("case", sorted(PARTITIONED))
def test_the_partitioned_snapshot_is_the_one_pandas_built(tmp_path, case) -> None:
    settings, drop = CASES[case]
    folder = build_in_partitions(awkward_log(drop), tmp_path, FeatureConfig(**settings))
    assert snapshot_digest(folder) == PARTITIONED[case], snapshot_summary(folder)


@pytest.mark.parametrize("case", sorted(IN_MEMORY))
def test_the_in_memory_snapshot_is_the_one_pandas_built(tmp_path, case) -> None:
    settings, drop = CASES[case]
    save_features(build_features(awkward_log(drop), FeatureConfig(**settings)), tmp_path)
    assert snapshot_digest(tmp_path) == IN_MEMORY[case], snapshot_summary(tmp_path)


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
@pytest.mark.parametrize("case", ["window-parts", "latest", "returning"])
def test_the_timestamp_unit_changes_nothing_but_the_column_type(tmp_path, unit, case) -> None:
    settings, drop = CASES[case]
    log = awkward_log(drop)
    other = log.assign(timestamp=log["timestamp"].astype(f"datetime64[{unit}, UTC]"))
    config = FeatureConfig(**settings)
    (tmp_path / "us").mkdir()
    (tmp_path / unit).mkdir()
    a = build_in_partitions(log, tmp_path / "us", config)
    b = build_in_partitions(other, tmp_path / unit, config)
    assert json.loads((a / "meta.json").read_text()) == json.loads((b / "meta.json").read_text())
    for name in ("users", "items", "train", "valid", "seen"):
        mine = pd.read_parquet(b / f"{name}.parquet")
        if "timestamp" in mine:
            stored = {"s": "ms"}.get(unit, unit)  # Parquet has no seconds unit
            assert str(mine["timestamp"].dtype) == f"datetime64[{stored}, UTC]"
            mine["timestamp"] = mine["timestamp"].astype("datetime64[us, UTC]")
        pd.testing.assert_frame_equal(mine, pd.read_parquet(a / f"{name}.parquet"))
