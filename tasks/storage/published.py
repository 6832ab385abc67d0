"""What a failed run published, from the publish journal: the facts and the sentence.

A run can fail before publishing (nothing published), inside the publish (the database
commit is the commit point: before it nothing is visible, after it the database serves the
run's rows and the lake tables follow one by one), or after it (the report stage: both
stores serve the run's rows). The failure line and the run's summary say which, table by
table, instead of assuming nothing was published.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

NOTHING = "Nothing was published by this run; the previous tables keep serving."


def publication(journal_dir: Path, run_date: date, run_id: str, published: dict | None) -> dict:
    """``{"state", "tables", "database", "lake"}``: the publish's journal state (``none``
    when it never started), its tables, whether the database committed and which lake
    tables hold the run's rows."""
    from tasks.storage import journal

    path = journal.path_for(journal_dir, journal.publish_id(run_date, run_id))
    if not path.exists():
        if published is not None:  # finished, its record since pruned: names from its summary
            names = [
                published["table"],
                *([published["similar"]["table"]] if published.get("similar") else []),
            ]
            return {"state": "done", "tables": names, "database": True, "lake": names}
        return {"state": "none", "tables": [], "database": False, "lake": []}
    record = journal.read(path)
    names = [t["name"] for t in record.get("tables", [])]
    state = record["state"]
    lake = [n for n in names if n in (record.get("lake_versions") or {})]
    if state == "done":
        lake = names
    committed = state not in ("intent", "rolled_back")
    return {"state": state, "tables": names, "database": committed, "lake": lake}


def publication_note(facts: dict[str, Any] | None) -> str:
    """One sentence on what the run published (see :func:`publication`)."""
    if not facts or facts["state"] in ("none", "rolled_back"):
        return NOTHING
    names = ", ".join(facts["tables"])
    if facts["state"] == "intent":
        return (
            f"Publishing ({names}) stopped before its commit was recorded: the database "
            "shows whether it committed, and the next run or 'recpipe doctor' finishes or "
            "undoes it from the journal."
        )
    if set(facts["lake"]) == set(facts["tables"]):
        return (
            f"This run's tables were published before it failed ({names}: database and lake); "
            "they serve its recommendations."
        )
    missing = [n for n in facts["tables"] if n not in facts["lake"]]
    lake = ", ".join(facts["lake"]) or "no table"
    return (
        f"The database committed this run's rows ({names}, one transaction) and serves them; "
        f"in the lake, {lake} has them and {', '.join(missing)} not yet: the next run or "
        "'recpipe doctor' brings the lake level."
    )
