"""The edges suite on tiny graphs whose right answers are known: quarantine with
reasons, exact accounting, edges to users without interactions kept and counted, a
mostly bad batch rejected; and through the validate stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.config import ValidateConfig
from tasks.errors import DataValidationError
from tasks.validate import validate
from tasks.validation.edges import validate_edges

LENIENT = ValidateConfig(max_edge_quarantine_share=1.0)
KNOWN = pd.Series(["a", "b", "c"], dtype="str")


def edges(rows: list[tuple]) -> pd.DataFrame:
    users, friends, weights = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "friend_id": pd.array(friends, dtype="str"),
            "weight": np.array(weights, dtype="float64"),
        }
    )


GRAPH = [
    ("a", "b", 1.0),  # kept
    ("b", "a", 1.0),  # reverse duplicate of a mutual edge
    ("a", "b", 2.0),  # duplicate edge
    ("c", "c", 1.0),  # self-loop
    ("a", None, 1.0),  # missing friend
    ("b", "c", -1.0),  # negative weight
    ("b", "c", np.inf),  # not finite
    ("c", "x", 1.0),  # kept: x has no interactions
    ("y", "x", 0.5),  # kept: neither has
]


def test_mutual_graph_quarantines_with_reasons_and_counts_cold_users(tmp_path) -> None:
    result = validate_edges(
        edges(GRAPH), direction="mutual", config=LENIENT, known_users=KNOWN, gx_root=tmp_path
    )
    table = result.table
    assert isinstance(table.accepted, pd.DataFrame)
    assert table.rows_read == 9 == table.rows_accepted + table.rows_quarantined
    kept = table.accepted[["user_id", "friend_id"]].values.tolist()
    assert kept == [["a", "b"], ["c", "x"], ["y", "x"]]
    assert table.reasons == {
        "reverse duplicate of a mutual edge": 1,
        "duplicate edge": 1,
        "self-loop (user = friend)": 1,
        "friend_id is null or blank": 1,
        "weight missing, not finite or negative": 2,
    }
    assert result.bad_rows == 4  # the two duplicates are harmless
    assert table.flagged == {"edge to a user without interactions": 2}
    assert result.users_without_interactions == 2  # x and y
    assert "9 rows read = 3 kept + 6 quarantined" in result.accounting


def test_follows_keep_both_directions(tmp_path) -> None:
    result = validate_edges(
        edges([("a", "b", 1.0), ("b", "a", 1.0), ("a", "b", 1.0)]),
        direction="follows",
        config=LENIENT,
        known_users=KNOWN,
        gx_root=tmp_path,
    )
    assert result.table.rows_accepted == 2
    assert result.table.reasons == {"duplicate edge": 1}


def test_a_mostly_bad_batch_stops_with_a_clear_error(tmp_path) -> None:
    bad = edges([("a", "a", 1.0), ("b", "b", 1.0), ("a", "b", 1.0)])
    with pytest.raises(DataValidationError, match=r"edges: 2 of 3 rows .*self-loop.*--social"):
        validate_edges(
            bad,
            direction="mutual",
            config=ValidateConfig(),
            known_users=KNOWN,
            gx_root=tmp_path,
        )


def test_duplicates_alone_never_stop_the_night(tmp_path) -> None:
    both_ways = edges([("a", "b", 1.0), ("b", "a", 1.0), ("b", "c", 1.0), ("c", "b", 1.0)])
    result = validate_edges(
        both_ways,
        direction="mutual",
        config=ValidateConfig(),
        known_users=KNOWN,
        gx_root=tmp_path,
    )
    assert result.table.rows_accepted == 2 and result.bad_rows == 0


def test_the_validate_stage_writes_edges_and_their_quarantine(tmp_path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    events = pd.DataFrame(
        {
            "user_id": pd.array(["a", "b", "c"], dtype="str"),
            "item_id": pd.array(["i1", "i2", "i3"], dtype="str"),
            "timestamp": pd.to_datetime(["2024-05-01"] * 3, utc=True),
        }
    )
    events.to_parquet(raw / "interactions.parquet", index=False)
    edges(GRAPH).assign(
        ingest_issue=pd.array([None] * 9, dtype="str"),
        source_row=np.arange(1, 10),
    ).to_parquet(raw / "edges.parquet", index=False)
    out = validate(
        str(raw / "interactions.parquet"),
        str(tmp_path / "validated" / "run_date=2024-06-01"),
        str(tmp_path / "gx"),
        LENIENT,
        "2024-06-01T00:00:00Z",
        edges_path=str(raw / "edges.parquet"),
    )
    assert out.edges_path is not None and out.edges_quarantine_path is not None
    assert len(pd.read_parquet(out.edges_path)) == 3
    quarantine = pd.read_parquet(out.edges_quarantine_path)
    assert len(quarantine) == 6 and quarantine["source_row"].tolist() == [2, 3, 4, 5, 6, 7]
    assert out.tables["edges"]["users_without_interactions"] == 2
    assert "edges: 9 rows read" in out.accounting
