"""The feature snapshot, byte for byte in content, as the pandas implementation built it.

The digests below were taken from the snapshots the pandas features stage (before the Arrow
rewrite) wrote for the same logs and settings: the vocabularies (id -> index), every part
file's rows in order and its column types, and meta.json. A change in any of them (an id
sorted differently, a row moved between train and seen, a reordered tie, a count in
meta.json) changes the digest. ``snapshot_summary`` prints the readable side of a snapshot
when a digest differs.
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

# (settings, columns dropped from the log) -> digest of the pandas implementation's snapshot
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
    "window-parts": "ca8f2285f18d84e05d9d87ec9774e47664081f119a0fe7fd64686bd9f68e32fd",
    "window-one-part": "dba97ff0ee0db3f5fa24bb98c1d3474b94f7a22f977c447b7a64c2a5f80c8e29",
    "widened-window": "9cbd09c4e5c1c5c05315d67570140c3d8dccb01acf5393c9e1c42471a11cf4aa",
    "latest": "c958148d2d7c6b722b17b738d72d5d7012c16d0393973d3ffce6739e52c1daea",
    "returning": "3ee4718181cd88f2940f89078400846f8569e8cab616415d392910bb6fd8fbd8",
    "min-value": "812580d37a3aa79874ec04c8e1d2c113fd31feaaf541c0d388cc57b9210be73a",
    "user-mean": "8c73b8382594c7256f2b3f6fe9a4febba889310f04234e34d83f7fcc589cf4d4",
    "all": "43df3c08ce79d5adcf126ffa1da556347303550e8a939166e150dded084f7587",
    "no-event-type": "2dafbfb2cab7bab89a4b89f264039026e16c1db13b46da1474db509b7cf65ca6",
    "no-value": "ac23f53f89cdeae03a2e5f8322787615e76f5081b8b00f1c86acdca3a9a415c1",
}

IN_MEMORY = {
    "window-parts": "eba2a4fff9801108c7237d4111cc3790b97c9a9a49a8ef4a303468588d983c01",
    "latest": "a91a48063065fbcf7e5f959b39c1f46fc5c85e77695c3767050c64163b3a7fb0",
    "returning": "3f16ffea8753351bf1ce9b0ed4604fb5eb3e006fdf529aa5b4d5507f83e08463",
    "user-mean": "303a2f542b0337ea03e2e42ca234ee7842f25f22e1626a61cac19f93791d1d87",
    "no-value": "31ada55aa7e2487206b9cb3b86f5ecccece8aa21eac4979795957b274ea631fd",
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
