"""What the served model needs to answer with the table's rows: the publishing context.

The registered model alone ranks by its scores; the table's rows also follow the night's
rules (seen, denied and unavailable items, the cap per genre, the minimum history, the
cold-start, social and fallback strategies, the reasons) and its item statistics (recent
popularity, item-item similarity, the friends' items). Every publish records them as a
*layer*, a folder of:

* ``context.json``: the run (run id, run date, model name and version), the scoring
  settings, the newest event, the ``features.positive`` rule, the deny list as resolved
  (the served copy reads no workspace files);
* ``history.parquet``: the events the rows were scored from (the night's: every user's,
  in the columns its shards read; a refresh's: its users' whole histories);
* ``scored_users.json`` (a refresh): the users it scored, those known only from relations among
  them;
* ``items.parquet``: the catalog table as read (availability, genres, titles), when any;
* ``recent_popularity.npy``, ``similarity.npz`` and the social strategy's files;
* ``new_item_rows.parquet`` (a night or a refresh that gave lists new items:
  tasks/scoring/new_items.py): those rows as published. A published user's answer carries
  them; they are not ranked again (that takes the content-aware model and the items'
  content), so a request's events and another list length get the champion's rows alone.

``context.json`` is written last: a folder without it is not a layer. The night's layer
and the refreshes' layers after it make a :class:`ServingContext`: each user is answered
from the newest layer that published rows for them, through the same function that wrote
the rows (:func:`tasks.scoring.table.table_blocks`), so the answer is the table's rows.
Given a user's events instead, it ranks them with the newest layer's rules and statistics.
"""

from __future__ import annotations

import json
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CONTEXT_FILE = "context.json"
HISTORY_FILE = "history.parquet"
USERS_FILE = "scored_users.json"
ITEMS_FILE = "items.parquet"
POPULARITY_FILE = "recent_popularity.npy"
SIMILARITY_FILE = "similarity.npz"
NEW_ITEM_ROWS_FILE = "new_item_rows.parquet"
# what says where a user's answer came from (the ``history`` column of the answer)
FROM_REQUEST = "request"
# on a version's MLflow run (tasks/tracking/serving.py): the tag naming the night's layer
# that the served model answers from, and the folder of the refreshes' layers under it
SERVING_TAG = "recpipe.serving"
REFRESH_FOLDER = "refresh"


def write_layer(
    folder: Path,
    *,
    kind: str,
    run: dict,
    model_name: str,
    config: Any,
    history: pd.DataFrame | Path,
    items_path: str | Path | None,
    statistics_dir: Path | None,
    newest: pd.Timestamp | None,
    positive: tuple[str, float] | None,
    popularity: np.ndarray | None = None,
    similarity: Any = None,
    social: Any = None,
    users: list[str] | None = None,
    new_item_rows_from: Path | None = None,
) -> Path:
    """Write a layer to ``folder`` (emptied first). ``kind``: ``night`` or ``refresh``;
    ``run``: run_id, run_date, model_version; ``config``: the ``ScoreConfig`` the rows were
    scored with. Item statistics come from ``statistics_dir`` (the night's scores folder:
    popularity, similarity, social files) or are given (``popularity``, ``similarity``,
    ``social``, as a refresh computed them); ``users``: the users a refresh scored;
    ``new_item_rows_from``: a refresh's scored rows, whose ``new_item`` rows are kept."""
    import scipy.sparse as sp

    from tasks.data.catalog import read_deny_list
    from tasks.data.shards import COLUMNS
    from tasks.scoring.social import SOCIAL_FILE, SOCIAL_USERS_FILE, save_social_scores

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if isinstance(history, Path):  # the night's validated events, as its shards read them
        import pyarrow.parquet as pq

        columns = [c for c in COLUMNS if c in pq.read_schema(history).names]
        pq.write_table(pq.read_table(history, columns=columns), folder / HISTORY_FILE)
    else:
        history.to_parquet(folder / HISTORY_FILE, index=False)
    if users is not None:
        (folder / USERS_FILE).write_text(json.dumps(sorted(map(str, users))))
    if items_path:
        shutil.copyfile(items_path, folder / ITEMS_FILE)
    if statistics_dir is not None:
        for name in (POPULARITY_FILE, SIMILARITY_FILE, SOCIAL_FILE, SOCIAL_USERS_FILE):
            if (statistics_dir / name).is_file():
                shutil.copyfile(statistics_dir / name, folder / name)
        parts = statistics_dir / "recommendations"
        files = sorted(parts.glob("part-*.parquet")) if parts.is_dir() else []
        _copy_new_item_rows(files, folder / NEW_ITEM_ROWS_FILE)
    if new_item_rows_from is not None:
        _copy_new_item_rows([Path(new_item_rows_from)], folder / NEW_ITEM_ROWS_FILE)
    if popularity is not None:
        np.save(folder / POPULARITY_FILE, popularity)
    if similarity is not None:
        sp.save_npz(folder / SIMILARITY_FILE, similarity, compressed=False)
    if social is not None:
        save_social_scores(social, folder)
    settings = config.model_dump(mode="json")
    settings["deny_items"] = sorted(read_deny_list(config.deny_list_path, config.deny_items))
    settings["deny_list_path"] = None
    context = {
        "kind": kind,
        "run_id": run["run_id"],
        "run_date": str(run["run_date"]),
        "model_name": model_name,
        "model_version": str(run["model_version"]),
        "score": settings,
        "newest": None if newest is None else pd.Timestamp(newest).isoformat(),
        "positive": None if positive is None else list(positive),
    }
    (folder / CONTEXT_FILE).write_text(json.dumps(context, indent=1))
    return folder


def _copy_new_item_rows(files: list[Path], to: Path) -> None:
    """The ``new_item`` rows of the scored ``files`` into ``to``, when there are any."""
    import pyarrow.dataset as ds

    if not files:
        return
    table = ds.dataset([str(f) for f in files]).to_table(filter=ds.field("strategy") == "new_item")
    if table.num_rows:
        import pyarrow.parquet as pq

        pq.write_table(table, to)


class Layer:
    """One publish's context (see the module's docstring). Its files are read once, when
    first needed, and kept: a served process answers many requests from one layer."""

    def __init__(self, folder: Path, context: dict) -> None:
        self.folder = folder
        self.context = context
        self.base: Layer | None = None  # the night's layer, whose similarity a refresh shares

    @classmethod
    def read(cls, folder: Path) -> Layer:
        return cls(folder, json.loads((folder / CONTEXT_FILE).read_text()))

    @property
    def name(self) -> str:
        return f"{self.context['kind']} {self.context['run_date']} ({self.context['run_id']})"

    @cached_property
    def history(self) -> pd.DataFrame:
        history = pd.read_parquet(self.folder / HISTORY_FILE)
        history["user_id"] = history["user_id"].astype(str)
        history["item_id"] = history["item_id"].astype(str)
        return history

    @cached_property
    def users(self) -> set[str]:
        """The users this layer published rows for: those of its history, and those
        scored without one (known from the relations between users)."""
        listed = self.folder / USERS_FILE
        if listed.is_file():
            return set(json.loads(listed.read_text()))
        users = set(self.history["user_id"].unique())
        if self.social is not None:
            users |= {str(u) for u in self.social.edge_only}
        return users

    @cached_property
    def social(self) -> Any:
        from tasks.scoring.social import load_social_scores

        return load_social_scores(self.folder)

    @cached_property
    def config(self) -> Any:
        from tasks.config import ScoreConfig

        return ScoreConfig.model_validate(self.context["score"])

    @cached_property
    def items_table(self) -> pd.DataFrame | None:
        items_file = self.folder / ITEMS_FILE
        return pd.read_parquet(items_file) if items_file.is_file() else None

    @cached_property
    def popularity(self) -> np.ndarray | None:
        path = self.folder / POPULARITY_FILE
        return np.load(path) if path.is_file() else None

    @cached_property
    def similarity(self) -> Any:
        """Its own item-item similarity, else the night's (a refresh computes one only
        when the champion's items differ from the night's)."""
        import scipy.sparse as sp

        path = self.folder / SIMILARITY_FILE
        if path.is_file():
            return sp.load_npz(path)
        return None if self.base is None else self.base.similarity

    @cached_property
    def new_item_rows(self) -> pd.DataFrame | None:
        path = self.folder / NEW_ITEM_ROWS_FILE
        return pd.read_parquet(path) if path.is_file() else None

    def rows(
        self,
        model: Any,
        users: Any,
        items: Any,
        wanted: list[str],
        history: pd.DataFrame,
        k: int | None = None,
        published: bool = False,
    ) -> pd.DataFrame:
        """The table's rows of ``wanted`` users ranked from ``history`` (their events; a
        wanted user without any is scored without history, as the night scores users known
        only from relations) with this layer's rules and statistics; ``k``: another list
        length than the published one. ``published``: ``history`` is what the layer
        published from, so the users' published ``new_item`` rows end their lists."""
        from tasks.data.catalog import build_catalog
        from tasks.scoring.table import empty_table, table_blocks

        config = self.config
        if k is not None:
            config = config.model_copy(update={"k": int(k)})
        catalog = build_catalog(
            items, self.items_table, set(config.deny_items), config.respect_available
        )
        run = {
            "run_id": self.context["run_id"],
            "run_date": pd.Timestamp(self.context["run_date"]).date(),
            "model_version": self.context["model_version"],
        }
        newest, positive = self.context["newest"], self.context["positive"]
        extra = np.array(sorted(set(wanted) - set(history["user_id"])), dtype=object)
        frames = list(
            table_blocks(
                model,
                users,
                items,
                catalog,
                history,
                config,
                run,
                newest=None if newest is None else pd.Timestamp(newest),
                popularity=self.popularity,
                similarity=self.similarity,
                positive=None if positive is None else (positive[0], float(positive[1])),
                social=self.social,
                extra_users=extra,
            )
        )
        if not frames:
            return empty_table(model.name, run)
        out = pd.concat(frames, ignore_index=True)
        if published and k is None and self.new_item_rows is not None:
            out = _with_published_new_items(out, self.new_item_rows, config.k)
        return out


class ServingContext:
    """The night's layer and the refreshes' layers published after it, oldest first."""

    def __init__(self, layers: list[Layer]) -> None:
        if not layers:
            raise ValueError("a serving context needs at least the night's layer")
        self.layers = layers

    @classmethod
    def read(cls, folders: list[Path]) -> ServingContext:
        """The layers of ``folders`` (oldest first) that are complete."""
        layers = [Layer.read(f) for f in folders if (f / CONTEXT_FILE).is_file()]
        for later in layers[1:]:
            later.base = layers[0]
        return cls(layers)

    @property
    def newest(self) -> Layer:
        return self.layers[-1]

    def answer(
        self,
        model: Any,
        users: Any,
        items: Any,
        request: pd.DataFrame,
        k: int | None = None,
    ) -> pd.DataFrame:
        """The table's rows for the users of ``request`` (column ``user_id``; with an
        ``item_id`` column, the rows of a user whose ``item_id`` is set are their events,
        with ``timestamp`` and ``value`` when given). A user without events in the request
        is answered from the newest layer that published rows for them (the ``history``
        column names it); a user with events is ranked from them with the newest layer's
        rules (``history`` = ``request``). A user neither gives nor has published rows gets
        none. ``k``: another list length than the published one (the rows then differ from
        the table's, by design)."""
        request = request.copy()
        request["user_id"] = request["user_id"].astype(str)
        given = request["item_id"].notna() if "item_id" in request else None
        asked = list(dict.fromkeys(request["user_id"]))
        parts = []
        with_events: list[str] = []
        if given is not None and given.any():
            events = request[given].copy()
            events["item_id"] = events["item_id"].astype(str)
            with_events = list(dict.fromkeys(events["user_id"]))
            if "timestamp" in events:  # a time without a zone is read as UTC, as ingest does
                events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
            rows = self.newest.rows(model, users, items, with_events, events, k)
            parts.append(rows.assign(history=FROM_REQUEST))
        given_events = set(with_events)
        rest = [u for u in asked if u not in given_events]
        by_layer: dict[int, list[str]] = {}
        for user in rest:
            found = [i for i, layer in enumerate(self.layers) if user in layer.users]
            if found:
                by_layer.setdefault(found[-1], []).append(user)
        for index, wanted in by_layer.items():
            layer = self.layers[index]
            mine = layer.history[layer.history["user_id"].isin(set(wanted))]
            rows = layer.rows(model, users, items, wanted, mine, k, published=True)
            parts.append(rows.assign(history=f"published: {layer.name}"))
        if not parts:
            return pd.DataFrame(columns=[*ANSWER_COLUMNS])
        out = pd.concat(parts, ignore_index=True)
        order = {user: i for i, user in enumerate(asked)}
        out = out.sort_values(
            ["user_id", "rank"], key=lambda c: c.map(order) if c.name == "user_id" else c
        )
        return out[ANSWER_COLUMNS].reset_index(drop=True)


def _with_published_new_items(rows: pd.DataFrame, new: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each user's rows with their published ``new_item`` rows in the last ranks."""
    theirs = new[new["user_id"].astype(str).isin(set(rows["user_id"].astype(str)))]
    if theirs.empty:
        return rows
    slots = theirs.groupby("user_id")["rank"].min().rename("first_new")
    rows = rows.join(slots, on="user_id")
    kept = rows[rows["first_new"].isna() | (rows["rank"] < rows["first_new"])]
    out = pd.concat([kept.drop(columns="first_new"), theirs[rows.columns.drop("first_new")]])
    return out.sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)


ANSWER_COLUMNS = [
    "user_id",
    "rank",
    "item_id",
    "score",
    "strategy",
    "reason",
    "model_name",
    "model_version",
    "run_id",
    "run_date",
    "history",
]
