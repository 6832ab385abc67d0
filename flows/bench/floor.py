"""The floor a data stage is measured against: one bare Arrow pass over the same data.

``arrow_floor`` reads the generated interactions (every Parquet part of the folder), checks
every column for nulls, runs the three group-bys a validation and feature pass needs at
least (events per user, per item, and the count of each (user, item, timestamp) key for
duplicates), and writes the table back as Parquet: what any data stage over these rows
costs at least on this machine, with vectorised Arrow compute and nothing else. The growth
benchmark measures it in the same run as the flow and prints each data stage's time as a
multiple of it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

# The night's stages that read or write the interaction-sized data, compared to the floor.
DATA_STAGES = ("ingest", "validate", "features", "check", "publish", "report")


def arrow_floor(folder: Path | str) -> dict:
    """Seconds of one bare Arrow pass over the Parquet files under ``folder``, and its
    row count and figures (so the pass cannot be optimised away unseen)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder}: no Parquet files to measure the floor on")
    with tempfile.TemporaryDirectory(prefix="recpipe-floor-") as tmp:
        start = time.perf_counter()
        table = pa.concat_tables(pq.read_table(f) for f in files)
        nulls = {name: table.column(name).null_count for name in table.column_names}
        blank = {
            name: int(pc.sum(pc.equal(pc.utf8_length(table.column(name)), 0)).as_py() or 0)
            for name in ("user_id", "item_id")
            if name in table.column_names and _is_text(table.schema.field(name).type)
        }
        per_user = table.group_by("user_id").aggregate([([], "count_all")])
        per_item = table.group_by("item_id").aggregate([([], "count_all")])
        keys = [c for c in ("user_id", "item_id", "timestamp") if c in table.column_names]
        per_key = table.group_by(keys).aggregate([([], "count_all")])
        duplicates = table.num_rows - per_key.num_rows
        pq.write_table(table, Path(tmp) / "floor.parquet")
        seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "rows": table.num_rows,
        "users": per_user.num_rows,
        "items": per_item.num_rows,
        "duplicates": duplicates,
        "nulls": sum(nulls.values()),
        "blank_ids": sum(blank.values()),
    }


def _is_text(kind: object) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def ratios(stage_seconds: dict[str, float], floor_seconds: float) -> dict[str, float]:
    """Each data stage's seconds as a multiple of the floor's (stages the run had)."""
    if floor_seconds <= 0:
        return {}
    return {
        stage: round(stage_seconds[stage] / floor_seconds, 1)
        for stage in DATA_STAGES
        if stage in stage_seconds
    }
