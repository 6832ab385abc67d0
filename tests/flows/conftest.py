"""Shared by the flow tests: one Prefect test harness (a real API server) per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def harness_api_url(prefect_harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def small_config(workspace: Path, **sections):
    """A quick pipeline: 150 demo users, the popularity model (no content model), k = 5."""
    from tasks.config import load_config

    overrides = {
        "workspace": str(workspace),
        "ingest": {"demo": {"n_users": 150, "n_items": 100, "mean_interactions": 15}},
        "train": {"models": ["popularity"], "content_models": []},
        "score": {"k": 5},
    }
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_config(overrides=overrides, environ={})


@pytest.fixture(scope="session")
def make_config():
    return small_config
