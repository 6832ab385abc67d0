"""The relations between users in a feature snapshot, and the ``social`` fit input.

Beside the other features, as of the run date (the graph validated for that date):

    social.parquet        user_id, friend_id, weight, user_idx, friend_idx
    social_users.parquet  user_id: users who appear only in edges (no interactions)

Row ``user -> friend`` means the user follows / trusts / is a friend of ``friend``; a
mutual relation is stored both ways; no self-loops; one row per pair (the largest weight
of repeated pairs). ``user_idx`` / ``friend_idx`` index the snapshot's user vocabulary
(``users.parquet``) and are null for users only in edges: they stay in the graph, so
scoring can still recommend to them from their friends, but they are not rows of the
``social`` matrix, which lives in the interaction matrix's user index space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prefect import task
from prefect.cache_policies import NO_CACHE

GRAPH_FILE = "social.parquet"
EDGE_ONLY_FILE = "social_users.parquet"


def graph_frame(edges: pd.DataFrame, direction: str, users: pd.Series) -> pd.DataFrame:
    """The snapshot's graph from validated ``edges`` (user_id, friend_id, weight) and the
    vocabulary ``users`` (user ids in index order); inputs are not mutated."""
    frame = edges[["user_id", "friend_id", "weight"]].astype(
        {"user_id": "str", "friend_id": "str", "weight": "float64"}
    )
    if direction == "mutual":
        back = frame.rename(columns={"user_id": "friend_id", "friend_id": "user_id"})
        frame = pd.concat([frame, back[frame.columns]], ignore_index=True)
    frame = frame[frame["user_id"] != frame["friend_id"]]
    frame = (
        frame.groupby(["user_id", "friend_id"], sort=True, observed=True)["weight"]
        .max()
        .reset_index()
    )
    index = pd.Series(np.arange(len(users), dtype=np.int64), index=users.astype("str").to_numpy())
    for side in ("user", "friend"):
        frame[f"{side}_idx"] = frame[f"{side}_id"].map(index).astype("Int64")
    return frame.reset_index(drop=True)


def edge_only_users(graph: pd.DataFrame) -> pd.DataFrame:
    """The users of ``graph`` outside the user vocabulary, sorted."""
    ids = pd.concat(
        [
            graph.loc[graph["user_idx"].isna(), "user_id"],
            graph.loc[graph["friend_idx"].isna(), "friend_id"],
        ]
    )
    return pd.DataFrame({"user_id": pd.array(sorted(ids.unique()), dtype="str")})


def write_social_graph(edges_path: str, features_dir: str, direction: str) -> dict:
    """Write ``social.parquet`` and ``social_users.parquet`` into the snapshot
    ``features_dir`` (whose ``users.parquet`` gives the vocabulary); their counts."""
    from tasks.storage.shared_files import replace_atomically

    out = Path(features_dir)
    users = pd.read_parquet(out / "users.parquet").sort_values("user_idx")["user_id"]
    graph = graph_frame(pd.read_parquet(edges_path), direction, users)
    only = edge_only_users(graph)
    replace_atomically(out / GRAPH_FILE, lambda tmp: graph.to_parquet(tmp, index=False))
    replace_atomically(out / EDGE_ONLY_FILE, lambda tmp: only.to_parquet(tmp, index=False))
    in_vocabulary = graph["user_idx"].notna() & graph["friend_idx"].notna()
    return {
        "direction": direction,
        "edges": len(graph),  # directed rows, a mutual relation counted both ways
        "edges_between_known_users": int(in_vocabulary.sum()),
        "users_with_friends": int(graph.loc[graph["user_idx"].notna(), "user_idx"].nunique()),
        "edge_only_users": len(only),
    }


def read_graph(features_dir: Path | str) -> pd.DataFrame | None:
    """The snapshot's graph, None when it has none."""
    path = Path(features_dir) / GRAPH_FILE
    return pd.read_parquet(path) if path.is_file() else None


def social_matrix(graph: pd.DataFrame | None, n_users: int) -> sp.csr_matrix | None:
    """The ``social`` fit input: n_users x n_users float32 CSR, row u = the users u
    relates to with their weights, over the users in the vocabulary; None without a graph."""
    if graph is None:
        return None
    known = graph[graph["user_idx"].notna() & graph["friend_idx"].notna()]
    rows = known["user_idx"].to_numpy(dtype=np.int64)
    cols = known["friend_idx"].to_numpy(dtype=np.int64)
    data = known["weight"].to_numpy(dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_users), dtype=np.float32)
    matrix.sort_indices()
    return matrix


write_social_graph_task = task(name="social-graph", cache_policy=NO_CACHE)(write_social_graph)
