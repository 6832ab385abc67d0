"""The erasure ledger on tiny data: salted hashes only, private files, screening."""

from __future__ import annotations

import pandas as pd

from tasks.forget import ledger


def test_salt_is_private_and_stable(tmp_path) -> None:
    first = ledger.salt(tmp_path)
    assert ledger.salt(tmp_path) == first and len(first) == 32
    assert (tmp_path / "forget" / "salt").stat().st_mode & 0o777 == 0o600


def test_the_ledger_holds_a_salted_hash_never_the_id(tmp_path) -> None:
    key = ledger.salt(tmp_path)
    h = ledger.user_hash(key, "alice")
    ledger.record(tmp_path, [h], "req1", state="pending")
    ledger.record(tmp_path, [h], "req1", state="done", removed={"raw": 3})
    text = (tmp_path / "forget" / "ledger.json").read_text()
    assert "alice" not in text
    entry = ledger.load(tmp_path)["entries"][h]
    assert entry["state"] == "done" and entry["requests"] == ["req1"]
    assert entry["removed"] == {"raw": 3} and entry["requested_at"]
    assert (tmp_path / "forget" / "ledger.json").stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other"
    assert ledger.user_hash(ledger.salt(other), "alice") != h  # salted per workspace


def test_screen_events_drops_and_counts_forgotten_users(tmp_path) -> None:
    key = ledger.salt(tmp_path)
    ledger.record(tmp_path, [ledger.user_hash(key, "bob")], "req", state="done")
    path = tmp_path / "interactions.parquet"
    pd.DataFrame({"user_id": ["a", "bob", "c", "bob"], "item_id": list("wxyz")}).to_parquet(path)
    assert ledger.screen_events(tmp_path, [str(path), None]) == 2
    assert pd.read_parquet(path)["user_id"].tolist() == ["a", "c"]
    assert ledger.screen_events(tmp_path, [str(path)]) == 0  # idempotent


def test_an_empty_ledger_screens_nothing(tmp_path) -> None:
    path = tmp_path / "interactions.parquet"
    pd.DataFrame({"user_id": ["bob"]}).to_parquet(path)
    before = path.stat().st_mtime_ns
    assert ledger.screen_events(tmp_path, [str(path)]) == 0
    assert path.stat().st_mtime_ns == before
