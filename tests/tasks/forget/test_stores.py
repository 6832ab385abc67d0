"""The publish database (SQLite and PostgreSQL) and a Delta table, without one user."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
import pytest

from tasks.forget.forms import forms_of
from tasks.forget.scan import scan_database, verify
from tasks.storage import database as db
from tasks.storage import lake


def _rows(users: list[str], day: date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": "r1",
            "run_date": day,
            "user_id": users,
            "rank": 1,
            "item_id": "i1",
            "score": 1.0,
            "model_name": "m",
            "model_version": "1",
            "strategy": "personal",
            "reason": None,
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/recs.db"
    from tests.tasks.test_publish import postgres_or_skip

    return postgres_or_skip()


def test_every_table_every_date_one_transaction(url: str, tmp_path) -> None:
    import sqlalchemy as sa

    target = f"zoë-{uuid.uuid4().hex[:6]}"
    own = f"recs_{uuid.uuid4().hex[:8]}"
    names = [own, f"{own}__stg_x"]
    engine = db.make_engine(url)
    try:
        for name in names:
            db.sql_table(name).create(engine)
            with engine.begin() as conn:
                for day in (date(2026, 3, 1), date(2026, 3, 2)):
                    frame = _rows(["a", target, "b"], day)
                    conn.execute(sa.insert(db.sql_table(name)), frame.to_dict("records"))
        counts = db.delete_users(engine, [target], [own])
        assert {n: counts[n] for n in names} == {n: 2 for n in names}
        for name in names:
            left = db.read_table(url, name)
            assert sorted(left["user_id"]) == ["a", "a", "b", "b"]
        assert db.delete_users(engine, [target], [own])[own] == 0  # idempotent
        if url.startswith("sqlite"):
            assert verify(tmp_path, target) == []  # free pages and WAL included
        else:
            assert scan_database(url, forms_of(target), [own]) == []
    finally:
        with engine.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


def test_a_delta_table_forgets_its_history(tmp_path) -> None:
    source = tmp_path / "scores.parquet"
    root = tmp_path / "table"
    for n, day in enumerate((date(2026, 3, 1), date(2026, 3, 2))):
        _rows(["a", "zoë", "b"], day).drop(columns=["run_date"]).to_parquet(source)
        lake.write_date(root, source, day, f"p{n}")
    source.unlink()
    assert lake.delete_users(root, ["zoë"], "e1") == 2
    assert lake.purge_history(root)["log_entries"] > 0
    assert sorted(lake.read_table(root)["user_id"]) == ["a", "a", "b", "b"]
    assert lake.published_dates(root) == [date(2026, 3, 1), date(2026, 3, 2)]
    assert verify(tmp_path, "zoë") == []
    assert lake.delete_users(root, ["zoë"], "e1") == 0
