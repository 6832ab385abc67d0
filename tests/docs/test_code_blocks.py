"""Every runnable code block of the README and the documentation runs as written in a
small demo workspace, or says why it does not (tests/docs/blocks.py: the markers)."""

from __future__ import annotations

import os

import pytest

from tests.docs.blocks import Block, blocks_of, documents, runnable_blocks
from tests.docs.conftest import RUN_DATE, run_block

BLOCKS = runnable_blocks()


def test_every_runnable_block_is_marked() -> None:
    unmarked = [b.id for b in BLOCKS if b.action is None]
    assert not unmarked, (
        f"code blocks without <!-- run --> or <!-- skip: reason --> before them: {unmarked}"
    )
    no_reason = [b.id for b in BLOCKS if b.action == "skip" and not b.note]
    assert not no_reason, f"skipped blocks must say why: {no_reason}"
    notes = {b.note for b in BLOCKS if b.action == "run"}
    assert notes <= {"", "writes"}, f"unknown run markers: {notes - {'', 'writes'}}"


def test_the_documents_have_runnable_blocks() -> None:
    assert len(documents()) > 20
    ran = [b for b in BLOCKS if b.action == "run"]
    assert {b.language for b in ran} >= {"bash", "python", "toml"}
    assert len(ran) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.id}-{b.language}")
def test_block_runs_as_written(block: Block, request) -> None:
    if block.action == "skip":
        pytest.skip(block.note)
    outcome = request.getfixturevalue("block_outcomes")[block.id]
    assert outcome.returncode == 0, f"{block.id} ({block.language}):\n{outcome.output}"


def test_a_failing_block_is_reported(tmp_path) -> None:
    """A block that fails is seen as failing, with its output."""
    page = tmp_path / "page.md"
    page.write_text("<!-- run -->\n```bash\necho to-stderr >&2\nfalse\necho never\n```\n")
    [failing] = blocks_of(page, root=tmp_path)
    outcome = run_block(failing, tmp_path)
    assert outcome.returncode != 0
    assert "to-stderr" in outcome.output and "never" not in outcome.output
    bad_config = Block(failing.path, 1, "toml", "[score]\nkk = 3\n", "run", "")
    assert run_block(bad_config, tmp_path).returncode == 1


def test_the_lake_reader_reads_the_dates_rows(docs_workspace) -> None:
    """The Delta reader example, run in this process: it reads the example date's rows,
    as the table holds them, and time travel to the newest version reads every row."""
    from datetime import date

    from tasks.publishing.stores import read_lake_table

    block = next(b for b in BLOCKS if b.language == "python" and "DeltaTable(" in b.code)
    assert block.action == "run"
    space: dict = {}
    cwd = os.getcwd()
    try:
        os.chdir(docs_workspace)
        exec(compile(block.code, block.id, "exec"), space)
    finally:
        os.chdir(cwd)
    root = docs_workspace / "recpipe-home" / "tables" / "recommendations"
    lake = read_lake_table(root, date.fromisoformat(RUN_DATE))
    assert len(space["recs"]) == len(lake) > 0
    assert len(space["first"]) == lake["user_id"].nunique()
    assert len(space["same"]) == len(read_lake_table(root))
