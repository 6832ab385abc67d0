"""The night's stages through :class:`flows.night.Night` with the direct step: every stage
function called in this process, no Prefect flow run, no task runs; the same code the
nightly flow runs as Prefect tasks (tests/flows/test_nightly.py)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

RUN_DATE = date(2026, 3, 2)


def run_night(config, run_id: str) -> dict:
    """What flows/nightly.py does, without Prefect."""
    from flows.night import Night
    from flows.nightly import run_stages

    return run_stages(Night.open(config, RUN_DATE, False, run_id, logging.getLogger("test-night")))


@pytest.fixture(scope="module")
def nights(make_config, tmp_path_factory) -> tuple:
    from prefect.context import FlowRunContext

    assert FlowRunContext.get() is None
    config = make_config(tmp_path_factory.mktemp("direct"))
    return config, run_night(config, "direct-1"), run_night(config, "direct-2")


def test_a_night_runs_every_stage_without_prefect(nights) -> None:
    from tasks.publishing.stores import read_lake_table
    from tasks.storage.workspace import Workspace

    config, first, _ = nights
    assert first["status"] == "COMPLETED"
    assert {"ingest", "validate", "features", "train", "evaluate", "promote"} <= set(
        first["stage_seconds"]
    )
    assert {"score", "check", "monitor", "publish", "report"} <= set(first["stage_seconds"])
    assert first["validation"]["artifact"] is False  # no flow run: no artifact
    assert first["scoring"]["output_check"]["checks"] > 0
    assert first["promotion"]["move_alias"] and first["published"]["rows"] > 0
    recs = read_lake_table(Workspace.at(config.workspace).tables / "recommendations", RUN_DATE)
    assert set(recs["run_id"]) == {"direct-2"}  # the second night replaced the date's rows
    assert len(recs) == first["published"]["rows"]


def test_a_second_night_reuses_the_unchanged_stages(nights) -> None:
    _, _, second = nights
    assert second["status"] == "COMPLETED"
    assert {"ingest", "validate", "features"} <= set(second["cached_stages"])
    assert second["published"]["rows"] == nights[1]["published"]["rows"]
    assert second["models"][0]["metrics"] == nights[1]["models"][0]["metrics"]
