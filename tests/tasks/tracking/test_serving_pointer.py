"""The served context follows the newest published date: a backfilled older date does not
take it back."""

from __future__ import annotations

from datetime import date


class Runs:
    """The part of an MlflowClient the pointer uses: tags of runs."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}

    def get_run(self, run_id: str):
        from types import SimpleNamespace

        return SimpleNamespace(data=SimpleNamespace(tags=dict(self.tags.get(run_id, {}))))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.tags.setdefault(run_id, {})[key] = value


def test_a_later_date_moves_the_pointer_an_older_one_does_not() -> None:
    from tasks.tracking.serving import SERVING_TAG, night_path, point_at

    client = Runs()
    assert point_at(client, "r", night_path(date(2026, 3, 2), "a"))
    assert point_at(client, "r", night_path(date(2026, 3, 3), "b"))
    assert not point_at(client, "r", night_path(date(2026, 3, 1), "c"))  # a backfill
    assert client.tags["r"][SERVING_TAG] == "serving/2026-03-03/b"
    assert point_at(client, "r", night_path(date(2026, 3, 3), "d"))  # a re-run of the date
    assert client.tags["r"][SERVING_TAG] == "serving/2026-03-03/d"
