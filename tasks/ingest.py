"""Ingest: bring interactions (and item metadata) from a source into the raw store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import IngestConfig

INTERACTION_COLUMNS = ["user_id", "item_id", "timestamp", "value", "event_type"]


def ingest_demo(config: IngestConfig, run_date: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo source: synthetic events up to the start (00:00 UTC) of ``run_date``."""
    from tasks.demo_data import generate_demo

    demo = config.demo
    return generate_demo(
        n_users=demo.n_users,
        n_items=demo.n_items,
        n_genres=demo.n_genres,
        mean_interactions=demo.mean_interactions,
        weeks=demo.weeks,
        seed=demo.seed,
        end=pd.Timestamp(run_date, tz="UTC"),
    )


def load_source(config: IngestConfig, run_date: date) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(interactions, items or None)`` from the configured source."""
    if config.source == "demo":
        return ingest_demo(config, run_date)
    raise ValueError(f"unknown source {config.source!r}; expected 'demo'")


@task(name="ingest", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def ingest_task(config: IngestConfig, run_date: date, raw_dir: str) -> dict:
    """Write today's raw interactions and items to ``raw_dir`` as Parquet."""
    interactions, items = load_source(config, run_date)
    out = Path(raw_dir)
    interactions_path = out / "interactions.parquet"
    interactions.to_parquet(interactions_path, index=False)
    items_path = None
    if items is not None:
        items_path = out / "items.parquet"
        items.to_parquet(items_path, index=False)
    return {
        "source": config.source,
        "rows": len(interactions),
        "interactions_path": str(interactions_path),
        "items_path": str(items_path) if items_path else None,
    }
