"""The MLflow model registry as recpipe uses it: versions, the ``champion`` alias, its history.

Every promotion (by the nightly gate or by hand) appends the version to the
registered model's ``champion.history`` tag, so ``rollback`` can return to the
previous champion and the dashboard shows who served when.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from tasks.errors import RecpipeError

CHAMPION = "champion"
HISTORY_TAG = "champion.history"


class RegistryError(RecpipeError):
    """A registry operation cannot be done (unknown model or version, nothing to roll back to)."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    model: str
    run_id: str
    created: str
    is_champion: bool
    tags: dict[str, str]


def register_version(
    client: Any, model_uri: str, name: str, run_id: str, tags: dict[str, str]
) -> str:
    """Register ``model_uri`` as a new version of ``name``; return the version number.

    A run registered before (a model reused by a re-run, see ``cache.reuse_models``)
    keeps its existing version instead of getting a duplicate.
    """
    import mlflow

    if model_exists(client, name):
        for existing in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
            return str(existing.version)

    version = mlflow.register_model(model_uri, name, tags={**tags, "run_id": run_id})
    return str(version.version)


def champion_version(client: Any, name: str) -> str | None:
    """The version behind alias ``champion``, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def champion_history(client: Any, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def set_champion(client: Any, name: str, version: str, reason: str, by: str = "gate") -> None:
    """Point ``champion`` at ``version`` and record it in the history; ``by`` says who
    moved it (``gate``: a night's promotion; ``hand``: ``recpipe model promote``), as
    the version's ``champion.by`` tag."""
    _require_version(client, name, version)
    client.set_registered_model_alias(name, CHAMPION, version)
    history = [*champion_history(client, name), version]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-200:]))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, version, "champion.promoted_at", stamp)
    client.set_model_version_tag(name, version, "champion.reason", reason[:5000])
    client.set_model_version_tag(name, version, "champion.by", by)


def rollback(client: Any, name: str) -> tuple[str, str]:
    """Return ``champion`` to the previous champion; ``(from_version, to_version)``."""
    current = champion_version(client, name)
    history = champion_history(client, name)
    previous = [v for v in history if v != current]
    if current is None or not previous:
        raise RegistryError(
            f"model {name!r}: nothing to roll back to (champion {current}, history {history}); "
            "a rollback needs at least two champions; use 'recpipe model promote VERSION'"
        )
    target = previous[-1]
    # Drop the current champion's trailing entries so a second rollback goes further back.
    while history and history[-1] != target:
        history.pop()
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, target, "champion.rolled_back_at", stamp)
    client.set_model_version_tag(
        name, target, "champion.reason", f"rollback from version {current}"
    )
    client.set_model_version_tag(name, target, "champion.by", "rollback")
    return current, target


def list_versions(client: Any, name: str) -> list[VersionInfo]:
    """All versions of ``name``, newest first."""
    current = champion_version(client, name)
    versions = client.search_model_versions(f"name='{name}'")
    out = [
        VersionInfo(
            version=str(v.version),
            model=v.tags.get("model", ""),
            run_id=v.run_id or v.tags.get("run_id", ""),
            created=time.strftime("%Y-%m-%d %H:%M", time.gmtime(v.creation_timestamp / 1000)),
            is_champion=str(v.version) == current,
            tags=dict(v.tags),
        )
        for v in versions
    ]
    return sorted(out, key=lambda v: int(v.version), reverse=True)


def _require_version(client: Any, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException:
        known = (
            [v.version for v in list_versions(client, name)] if model_exists(client, name) else []
        )
        raise RegistryError(
            f"model {name!r} has no version {version!r}; known versions: {known}; "
            "see 'recpipe model list'"
        ) from None


def model_exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


# -- erasure (tasks/forget) -----------------------------------------------------------------
ERASURE_TAG = "erasure.retrain_required"
ERASURE_IDS_TAG = "erasure.ids"
RETIRED_TAG = "champion.retired"


def mark_erased(client: Any, name: str, version: str, erasure_id: str) -> None:
    """Tag ``version`` as trained on the data of a user since forgotten (erasure
    ``erasure_id``); such a version may not serve again."""
    current = client.get_model_version(name, version).tags.get(ERASURE_IDS_TAG, "")
    ids = sorted({*filter(None, current.split(",")), erasure_id})
    client.set_model_version_tag(name, version, ERASURE_TAG, "true")
    client.set_model_version_tag(name, version, ERASURE_IDS_TAG, ",".join(ids)[:5000])


def is_erased(client: Any, name: str, version: str) -> bool:
    return client.get_model_version(name, version).tags.get(ERASURE_TAG) == "true"


def retire_erased_champion(client: Any, name: str) -> str | None:
    """When the champion was trained on a forgotten user's data, remove the alias (the
    night's gate then promotes a model trained tonight, without that user, as when there
    is no champion yet); the retired version, or None."""
    version = champion_version(client, name) if model_exists(client, name) else None
    if version is None or not is_erased(client, name, version):
        return None
    client.delete_registered_model_alias(name, CHAMPION)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client.set_model_version_tag(name, version, RETIRED_TAG, f"{stamp}: trained on erased data")
    return version
