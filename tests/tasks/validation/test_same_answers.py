"""Validation gives the answers it gave before its row checks were vectorised.

``golden_validation.json`` holds what the validation of pandas rows through Great
Expectations' per-row results gave (recorded once with ``RECPIPE_WRITE_GOLDEN=1``) on the
bad-input catalog and on a frame of edge cases for each check (Unicode whitespace, control
characters, length in code points, the time and value bounds, null keys among duplicates,
a bot, ingest issues): the same rows accepted and quarantined, with the same reasons, the
same counts and the same per-expectation figures.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.config import FilesConfig, ValidateConfig
from tasks.sources.files import read_files
from tasks.validate import validate
from tasks.validation.checks import validate_interactions

GOLDEN = Path(__file__).with_name("golden_validation.json")
NOW = pd.Timestamp("2024-06-02T00:00:00Z")
T = 1717200000  # 2024-06-01T00:00:00Z
CONFIG = ValidateConfig(max_quarantine_share=1.0, max_events_per_user=4)


def bad_input_catalog(folder: Path) -> pd.DataFrame:
    from tests.tasks.test_bad_input import CASES, HEADER

    for name, text in CASES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with gzip.open(folder / "zipped.csv.gz", "wt") as handle:
        handle.write(HEADER + f"u18,i1,{T},4\n")
    frame, _ = read_files(FilesConfig(path=folder))
    return frame


ODD_IDS = [
    "u\x85x",
    "\x85u",
    "u1\n",
    "u1\n\n",
    "\n",
    "\u3000",
    "\u200b",
    "\xa0u",
    "u\xa0",
    "u\tx",
    "a" * 256,
    "a" * 257,
    "\u00e9" * 256,
    "\u00e9" * 257,
    "\x1c",
    "\x1cu",
    "",
    "  ",
    None,
    "u\x7f",
    "u\u2028",
    "\u2028",
    "u \u00e9",
    "<b>x</b>",
    "u\x00",
    "\ufeffu",
    "u\u0085\u0085",
]


def edge_cases() -> pd.DataFrame:
    """Each check's edge cases, in one frame."""
    t = pd.Timestamp(T, unit="s", tz="UTC")
    oldest = pd.Timestamp("1995-01-01T00:00:00Z")
    newest = NOW + pd.Timedelta(hours=24)
    rows = []
    for n, uid in enumerate(ODD_IDS):
        rows.append((uid, f"i{n % 3}", t + pd.Timedelta(seconds=n), 1.0, "view", None))
        rows.append((f"v{n}", uid, t + pd.Timedelta(seconds=n), 1.0, "view", None))
    for n, ts in enumerate(
        [
            oldest,
            oldest - pd.Timedelta(microseconds=1),
            newest,
            newest + pd.Timedelta(seconds=1),
            pd.NaT,
        ]
    ):
        rows.append((f"t{n}", "i1", ts, 1.0, "view", None))
    for n, v in enumerate([0.0, 5.0, -0.0, np.nan, np.inf, -np.inf, 5.000001, -1e-9, 1e308]):
        rows.append((f"x{n}", "i1", t, v, "view", None))
    rows += [
        ("d1", "i1", t, 1.0, None, None),  # duplicates with a null event type
        ("d1", "i1", t, 2.0, None, None),
        ("d1", "i1", t, 3.0, "view", None),  # another event type: not a duplicate
        ("d2", "i2", t, 9.0, "view", None),  # first copy quarantined: the second is kept
        ("d2", "i2", t, 2.0, "view", None),
        ("d2", "i2", t, 2.0, "view", None),
        ("d3", "i-404", t, 1.0, "view", None),  # not in the catalog
        ("d3", " i1", t, 1.0, "view", None),
        ("d4", "i1", t, 1.0, "view", "value 'five' is not a number"),
        ("d4", "i2", t, np.nan, "view", "timestamp 'yesterday' unparseable"),
    ]
    rows += [
        ("bot", f"i{n % 3}", t + pd.Timedelta(seconds=n), 1.0, "click", None) for n in range(5)
    ]
    rows += [
        (None, f"i{n % 3}", t + pd.Timedelta(seconds=100 + n), 1.0, "click", None) for n in range(3)
    ]  # with the null-id row above: 4 null users, not a bot
    users, items, times, values, kinds, issues = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user_id": pd.array(users, dtype="str"),
            "item_id": pd.array(items, dtype="str"),
            "timestamp": pd.to_datetime(list(times), utc=True),
            "value": np.array(values, dtype="float64"),
            "event_type": pd.array(kinds, dtype="str"),
            "ingest_issue": pd.array(issues, dtype="str"),
            "source_row": np.arange(len(rows), dtype="int64"),
        }
    )


def catalog() -> pd.DataFrame:
    ids = ["i0", "i1", "i2", "i3", "1", "2", *[i for i in ODD_IDS[:6] if i]]
    return pd.DataFrame({"item_id": pd.array(ids, dtype="str")})


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for record in frame.astype(object).to_dict("records"):
        out.append({k: None if pd.isna(v) else str(v) for k, v in record.items()})
    return out


def answers(result) -> dict:
    return {
        "accepted": _records(result.accepted),
        "quarantined": _records(result.quarantined),
        "accepted_dtypes": {c: str(t) for c, t in result.accepted.dtypes.items()},
        "quarantined_dtypes": {c: str(t) for c, t in result.quarantined.dtypes.items()},
        "counts": [
            result.rows_read,
            result.rows_accepted,
            result.rows_quarantined,
            result.duplicates_dropped,
        ],
        "accounting": result.accounting,
        "reasons": result.reasons,
        "samples": list(result.samples),
        "expectations": [
            {
                k: e[k]
                for k in ("expectation", "column", "level", "success", "unexpected_count", "reason")
            }
            for e in result.expectations
        ],
    }


def task_answers(summary: dict) -> dict:
    keep = [
        "rows_read",
        "rows_accepted",
        "rows_quarantined",
        "duplicates_dropped",
        "rows_total",
        "accounting",
        "flagged",
    ]
    out = {k: summary[k] for k in keep}
    for name in ("accepted_path", "quarantine_path"):
        table = pd.read_parquet(summary[name])
        out[name] = _records(table)
        out[name + "_dtypes"] = {c: str(t) for c, t in table.dtypes.items()}
    return out


@pytest.fixture(scope="module")
def now_answers(tmp_path_factory) -> dict:
    gx_root = tmp_path_factory.mktemp("gx")
    catalog_frame = bad_input_catalog(tmp_path_factory.mktemp("cases"))
    items = pd.DataFrame({"item_id": pd.array(["i1", "i2", "i3", "1", "2"], dtype="str")})
    out = {}
    out["bad_input_catalog"] = answers(
        validate_interactions(
            catalog_frame,
            gx_root=gx_root,
            config=ValidateConfig(max_quarantine_share=1.0, max_events_per_user=50),
            now=NOW,
            items=items,
        )
    )
    edges = edge_cases()
    out["edge_cases"] = answers(
        validate_interactions(edges, gx_root=gx_root, config=CONFIG, now=NOW, items=catalog())
    )
    out["edge_cases_no_catalog_no_value"] = answers(
        validate_interactions(
            edges.drop(columns=["value", "event_type", "ingest_issue"]),
            gx_root=gx_root,
            config=CONFIG.model_copy(update={"max_events_per_user": None}),
            now=NOW,
        )
    )
    folder = tmp_path_factory.mktemp("task")
    raw, items_path = folder / "raw.parquet", folder / "items.parquet"
    edges.to_parquet(raw, index=False)
    catalog().to_parquet(items_path, index=False)
    for label, part_rows in (("task_whole", 10_000), ("task_partitions", 40)):
        summary = validate(
            str(raw),
            str(folder / label / "run_date=2024-06-01"),
            str(gx_root),
            CONFIG.model_copy(update={"part_rows": part_rows}),
            NOW.isoformat(),
            items_path=str(items_path),
        )
        out[label] = task_answers(summary.summary())
    return json.loads(json.dumps(out))


def test_the_same_answers_as_before(now_answers) -> None:
    if os.environ.get("RECPIPE_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now_answers, indent=1, ensure_ascii=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert now_answers.keys() == golden.keys()
    for case in golden:
        for key in golden[case]:
            assert now_answers[case][key] == golden[case][key], f"{case}: {key} differs"


def test_the_edge_cases_reach_every_check(now_answers) -> None:
    reasons = now_answers["edge_cases"]["reasons"]
    text = " ".join(reasons)
    for reason in [
        "user_id is null or blank",
        "item_id has surrounding whitespace or control characters",
        "user_id longer than 256 characters",
        "timestamp before",
        "timestamp more than 24h in the future",
        "value is null or NaN",
        "value is not finite",
        "value outside [0, 5]",
        "likely a bot",
        "item_id not in the item catalog",
        "ingest: value 'five' is not a number",
    ]:
        assert reason in text, reason
