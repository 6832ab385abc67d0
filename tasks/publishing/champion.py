"""The ``champion`` alias a run's promotion decided, moved once the run's tables commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

#: on a version a backfill promoted for an older date: why the alias did not move
ALIAS_LEFT_TAG = "champion.alias_left"


@dataclass(frozen=True)
class ChampionMove:
    """The alias change a run's promotion decided; made once its tables commit."""

    registered_name: str
    version: str
    reason: str


def move_champion_after_publish(
    workspace_root: Path | str, move: ChampionMove, run_date: date, newest_published: date | None
) -> str:
    """Point ``champion`` at the version a run's tables were published with, once they
    committed; never for a run date older than the newest published one (a backfill
    records its decision but leaves the live alias alone). What happened, in words."""
    from tasks import tracking
    from tasks.storage.workspace import Workspace
    from tasks.tracking import registry

    client = tracking.client_for(Workspace.at(workspace_root))
    if newest_published is not None and run_date < newest_published:
        left = (
            f"alias left on the live champion: {run_date} is older than the newest "
            f"published date {newest_published}"
        )
        # the version's own record: promoted for its date, never served by the alias
        client.set_model_version_tag(move.registered_name, move.version, ALIAS_LEFT_TAG, left)
        return left
    if registry.champion_version(client, move.registered_name) == move.version:
        return f"champion is v{move.version}"
    registry.set_champion(client, move.registered_name, move.version, move.reason)
    return f"champion moved to v{move.version}"
