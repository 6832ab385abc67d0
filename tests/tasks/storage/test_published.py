"""What a failed run published, read from the publish journal, and the sentence it gets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

import tasks.publish as pub
from tasks.errors import PublishError
from tasks.publishing.stores import (
    RECOMMENDATIONS,
    SIMILAR_ITEMS,
    Output,
    Stores,
    read_database_table,
)
from tasks.scoring.table import recommendations_table
from tasks.storage import database as db
from tasks.storage import lake
from tasks.storage.published import NOTHING, publication, publication_note

DAY = date(2026, 3, 2)


def outputs(root: Path, run: str) -> list:
    scored = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "rank": [1, 2],
            "item_id": ["i1", "i2"],
            "score": [0.9, 0.8],
            "strategy": ["personal"] * 2,
            "reason": [None, None],
        }
    )
    recs = recommendations_table(scored, run, DAY, "m", "1")
    similar = pd.DataFrame(
        {
            "run_id": run,
            "run_date": pd.Series([DAY], dtype="date32[pyarrow]"),
            "item_id": ["i1"],
            "rank": [1],
            "similar_item_id": ["i2"],
            "score": [0.5],
        }
    )
    folder = root / "in" / run
    folder.mkdir(parents=True)
    recs.to_parquet(folder / "recs.parquet", index=False)
    similar.to_parquet(folder / "sim.parquet", index=False)
    return [
        Output("recs", RECOMMENDATIONS, folder / "recs.parquet"),
        Output("sim", SIMILAR_ITEMS, folder / "sim.parquet"),
    ]


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(tmp_path, f"sqlite:///{tmp_path}/recs.db")


def test_a_run_that_never_published_says_nothing_was_published(stores) -> None:
    facts = publication(stores.journal, DAY, "run-1", None)
    assert facts == {"state": "none", "tables": [], "database": False, "lake": []}
    assert publication_note(facts) == NOTHING


def test_a_finished_publish_says_both_stores_serve_the_run(stores) -> None:
    published = pub.publish_night(stores, "run-1", DAY, outputs(stores.root, "run-1"))
    facts = publication(stores.journal, DAY, "run-1", published)
    assert facts == {"state": "done", "tables": ["recs", "sim"], "database": True,
                     "lake": ["recs", "sim"]}  # fmt: skip
    note = publication_note(facts)
    assert note.startswith("This run's tables were published before it failed (recs, sim")
    assert "Nothing was published" not in note


def test_a_publish_stopped_between_the_lake_tables_says_which_table_has_the_rows(
    stores, monkeypatch
) -> None:
    real = lake.write_date

    def sim_fails(root, *args, **kwargs):
        if Path(root).name == "sim":
            raise OSError("disk gone while writing the lake table sim")
        return real(root, *args, **kwargs)

    monkeypatch.setattr(lake, "write_date", sim_fails)
    with pytest.raises(PublishError):
        pub.publish_night(stores, "run-1", DAY, outputs(stores.root, "run-1"))
    facts = publication(stores.journal, DAY, "run-1", None)
    assert facts == {"state": "lake:recs", "tables": ["recs", "sim"], "database": True,
                     "lake": ["recs"]}  # fmt: skip
    assert set(read_database_table(stores.database_url, "sim", DAY, "similar_items").run_id) == {
        "run-1"
    }
    assert publication_note(facts) == (
        "The database committed this run's rows (recs, sim, one transaction) and serves them; "
        "in the lake, recs has them and sim not yet: the next run or 'recpipe doctor' brings "
        "the lake level."
    )


def test_a_publish_rolled_back_before_its_commit_says_nothing_was_published(
    stores, monkeypatch
) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("the database refused the swap")

    monkeypatch.setattr(db, "commit_rows", refuse)
    with pytest.raises(PublishError, match="nothing was published"):
        pub.publish_night(stores, "run-1", DAY, outputs(stores.root, "run-1"))
    facts = publication(stores.journal, DAY, "run-1", None)
    assert facts["state"] == "rolled_back" and not facts["database"]
    assert publication_note(facts) == NOTHING
