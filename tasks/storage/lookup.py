"""Read the published tables back for people: one user's list, one item's neighbours."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from tasks.errors import RecpipeError

RECOMMENDATION_COLUMNS = [
    "run_date",
    "rank",
    "item_id",
    "title",
    "score",
    "strategy",
    "reason",
    "model_name",
    "model_version",
]


class NotFoundError(RecpipeError):
    """The asked-for user, item or run date is not in the published tables."""


def latest_titles(raw_root: Path) -> dict[str, str]:
    """Titles from the newest ingested items table, if any."""
    tables = sorted(raw_root.glob("ingest_date=*/items.parquet"))
    if not tables:
        return {}
    items = pd.read_parquet(tables[-1])
    if "title" not in items:
        return {}
    return dict(zip(items["item_id"].astype(str), items["title"].astype(str), strict=False))


def _rows(url: str, name: str, column: str, value: str, run_date: date | None) -> pd.DataFrame:
    import sqlalchemy as sa

    from tasks.storage.database import make_engine

    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(name):
            raise NotFoundError(
                f"table {name!r} does not exist in "
                f"{engine.url.render_as_string(hide_password=True)}; "
                "run 'recpipe run' first or check --workspace / publish.database_url"
            )
        when = "(SELECT MAX(run_date) FROM {t})".format(t=f'"{name}"')
        params: dict = {"value": value}
        if run_date is not None:
            when, params["run_date"] = ":run_date", run_date
        sql = sa.text(
            f'SELECT * FROM "{name}" WHERE {column} = :value AND run_date = {when} ORDER BY rank'
        )
        with engine.connect() as conn:
            return pd.read_sql(sql, conn, params=params)
    finally:
        engine.dispose()


def user_recommendations(
    url: str, table: str, user_id: str, titles: dict[str, str], run_date: date | None = None
) -> pd.DataFrame:
    """A user's published list (``run_date``'s, else the latest), with the items' titles."""
    frame = _rows(url, table, "user_id", user_id, run_date)
    if frame.empty:
        raise _not_found(f"user {user_id!r} has no recommendations", table, run_date)
    frame["title"] = frame["item_id"].map(titles).fillna("")
    return frame[RECOMMENDATION_COLUMNS]


def similar_items(
    url: str, table: str, item_id: str, titles: dict[str, str], run_date: date | None = None
) -> pd.DataFrame:
    """An item's published neighbours (``run_date``'s, else the latest), with their titles."""
    frame = _rows(url, table, "item_id", item_id, run_date)
    if frame.empty:
        raise _not_found(f"item {item_id!r} has no similar items", table, run_date, cased=False)
    frame["title"] = frame["similar_item_id"].map(titles).fillna("")
    return frame[["run_date", "rank", "similar_item_id", "title", "score"]]


def _not_found(what: str, table: str, run_date: date | None, cased: bool = True) -> NotFoundError:
    hint = "check the id (ids are case-sensitive)" if cased else "check the id"
    return NotFoundError(
        f"{what} in table {table!r} for {run_date or 'the latest run date'}; {hint}"
    )
