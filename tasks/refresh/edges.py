"""The refresh's relations between users: new friends and follows between nights.

When ``ingest.social.path`` is configured, each refresh reads it again (whole, as the
nightly does), validates it with the nightly's edges suite (tasks/validation/edges.py:
bad rows quarantined to ``<workspace>/refresh/run_date=D/edges_quarantine/``, a mostly bad
batch stops the refresh before anything is published) and compares the graph with the
one the users' rows were last scored with: the last refresh's
(``<workspace>/refresh/run_date=D/social.parquet``), else the night's
(``<workspace>/features/run_date=D/social.parquet``). The users whose relations changed
(an edge added, removed or re-weighted, in either direction) are refreshed beside the
users with new events, and the ``social`` strategy (tasks/scoring/social.py) scores them
with the new graph. The graph is kept once the rows are published, so a refresh that
fails before publishing finds the same changes again.

The models keep the graph they were trained with until the next night.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

#: the graph the refreshed rows were last scored with, in the date's refresh folder
GRAPH_FILE = "social.parquet"
QUARANTINE_DIR = "edges_quarantine"
KEY = ["user_id", "friend_id", "weight"]


@dataclass(frozen=True)
class GraphUpdate:
    """The relations as read now (``graph``: user_id, friend_id, weight, user_idx,
    friend_idx, a mutual relation stored both ways), the users whose relations differ
    from the last scored graph (``changed``), and the figures."""

    graph: pd.DataFrame
    changed: list[str]
    stats: dict

    def unscorable(self, with_history: set[str]) -> set[str]:
        """The changed users the refresh cannot score: no history (``with_history``: the
        users with some) and no relation left. They keep their rows until the next
        night."""
        holders = set(self.graph["user_id"].astype(str))
        return {u for u in self.changed if u not in holders and u not in with_history}


def read_graph_update(
    config: Any,
    workspace: Any,
    run_date: date,
    batch_dir: Path,
    name: str,
    known_users: pd.Series,
) -> GraphUpdate | None:
    """The configured relations, validated, against the last scored graph; None when no
    relations are configured. ``known_users``: the users of the night's and the pending
    batches' interactions (an edge to anyone else is kept and counted)."""
    from tasks.data.social import graph_frame
    from tasks.sources.edges import read_edges
    from tasks.storage.shared_files import replace_atomically
    from tasks.validation.edges import validate_edges

    social = config.ingest.social
    if social.path is None:
        return None
    edges, read_stats = read_edges(social)
    result = validate_edges(
        edges,
        direction=social.direction,
        config=config.validate_,
        known_users=known_users,
        gx_root=workspace.validation_root,
        run_name=f"refresh-{name}-edges",
    )
    quarantined, accepted = result.table.quarantined, result.table.accepted
    assert quarantined is not None and accepted is not None  # validate_edges fills both
    if len(quarantined):
        path = batch_dir / QUARANTINE_DIR / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda tmp: quarantined.to_parquet(tmp, index=False))
    vocabulary = workspace.features(run_date) / "users.parquet"
    users = pd.read_parquet(vocabulary).sort_values("user_idx")["user_id"]
    graph = graph_frame(accepted, social.direction, users)
    previous, against = last_scored_graph(workspace, run_date, batch_dir)
    changed = changed_users(previous, graph)
    stats = {
        "rows_read": read_stats["rows"],
        "accounting": result.accounting,
        "edges": len(graph),
        "compared_with": against,
        "users_changed": len(changed),
    }
    return GraphUpdate(graph, changed, stats)


def last_scored_graph(workspace: Any, run_date: date, batch_dir: Path) -> tuple[pd.DataFrame, str]:
    """The graph the date's rows were last scored with, and which it is."""
    for path, label in (
        (batch_dir / GRAPH_FILE, "the last refresh's graph"),
        (workspace.features(run_date) / GRAPH_FILE, "the night's graph"),
    ):
        if path.is_file():
            return pd.read_parquet(path, columns=KEY), label
    return pd.DataFrame({c: pd.Series(dtype="str") for c in KEY}), "no graph (the night had none)"


def changed_users(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """The users holding an edge that is in one graph and not the other (or weighs
    otherwise), sorted."""
    types = {"user_id": "str", "friend_id": "str", "weight": "float64"}
    both = old[KEY].astype(types).merge(new[KEY].astype(types), how="outer", indicator=True)
    return sorted(set(both.loc[both["_merge"] != "both", "user_id"]))


def keep_graph(batch_dir: Path, graph: pd.DataFrame) -> None:
    """Record ``graph`` as the one the date's rows are now scored with."""
    from tasks.storage.shared_files import replace_atomically

    batch_dir.mkdir(parents=True, exist_ok=True)
    replace_atomically(batch_dir / GRAPH_FILE, lambda tmp: graph.to_parquet(tmp, index=False))
