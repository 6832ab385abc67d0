"""Model versions trained on a forgotten user's data.

A registered version was trained on the user's data when its model's user vocabulary
(``users.json`` in the logged bundle) lists the id. Such versions are tagged
(``erasure.retrain_required``, ``erasure.ids``: tasks/tracking/registry.py) before their
artifacts are rewritten (tasks/forget/files.py: the id becomes a tombstone, the user's
row of the training matrix is emptied). A tagged champion never serves again: the next
night removes its alias before the gate (:func:`retire_erased_champion`), so the gate
promotes one of the night's models, all trained on data the ledger has screened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


def artifact_dir(client: Any, version: Any) -> Path | None:
    """The local folder of a version's logged model (None when not on this machine)."""
    location = None
    model_id = getattr(version, "model_id", None)
    source = str(getattr(version, "source", "") or "")
    if not model_id and source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/").split("/", 1)[0]
    if model_id:
        try:
            location = client.get_logged_model(model_id).artifact_location
        except Exception:  # noqa: BLE001 - a registry without logged models: try the run
            location = None
    if location is None and version.run_id:
        location = client.get_run(version.run_id).info.artifact_uri
    if not location:
        return None
    parsed = urlparse(location)
    path = Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else None
    return path if path is not None and path.is_dir() else None


def vocabulary_lists(folder: Path, user_ids: set[str]) -> bool:
    """Does any ``users.json`` under ``folder`` list one of ``user_ids``?"""
    for listing in folder.rglob("users.json"):
        try:
            values = json.loads(listing.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(values, list) and user_ids.intersection(values):
            return True
    return False


def trained_on(client: Any, name: str, user_ids: set[str]) -> list[str]:
    """The versions of registered model ``name`` whose vocabulary lists a user."""
    from tasks.tracking.registry import model_exists

    if not model_exists(client, name):
        return []
    out = []
    for version in client.search_model_versions(f"name='{name}'"):
        folder = artifact_dir(client, version)
        if folder is not None and vocabulary_lists(folder, user_ids):
            out.append(str(version.version))
    return sorted(out, key=int)


def mark(client: Any, name: str, versions: list[str], erasure_id: str) -> None:
    from tasks.tracking.registry import mark_erased

    for version in versions:
        mark_erased(client, name, version, erasure_id)


def retire_erased_champion(client: Any, name: str, logger: Any = None) -> str | None:
    """The night's check before the gate (see the module docstring)."""
    from tasks.tracking.registry import retire_erased_champion as retire

    version = retire(client, name)
    if version is not None and logger is not None:
        logger.warning(
            "champion version %s was trained on the data of a forgotten user: it no longer "
            "serves, and tonight's best model (trained without that user) is promoted",
            version,
        )
    return version
