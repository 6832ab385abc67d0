"""The documentation site builds in strict mode with no warning, and its generated
reference pages list what the code declares."""

from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import run_command
from tests.docs.blocks import REPO


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's notice about its successor
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = run_command(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        timeout=300,
        cwd=REPO,
        env=env,
    )
    return site, done


def test_the_site_builds_strict_without_warnings(built_site) -> None:
    _, done = built_site
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    noisy = [
        line
        for line in output.splitlines()
        if "WARNING" in line or "not included in the" in line or "ERROR" in line
    ]
    assert not noisy, "\n".join(noisy)


def test_the_cli_reference_lists_every_command(built_site) -> None:
    from typer.main import get_command

    from flows.cli import app

    site, _ = built_site
    page = (site / "reference" / "cli" / "index.html").read_text()
    root = get_command(app)
    for name, command in root.commands.items():
        assert f"recpipe {name}</code>" in page, name
        for sub in getattr(command, "commands", {}):
            assert f"recpipe {name} {sub}</code>" in page, (name, sub)
    assert "--demo-users" in page and "--social-path" in page


def test_the_config_reference_lists_every_section_and_key(built_site) -> None:
    from tasks.config import PipelineConfig

    site, _ = built_site
    page = (site / "reference" / "configuration" / "index.html").read_text()
    assert "<code>[score]</code>" in page and "<code>[train.mult_dae]</code>" in page
    for key in PipelineConfig.model_fields["score"].annotation.model_fields:
        assert f"RECPIPE__SCORE__{key.upper()}" in page, key
    assert "RECPIPE__TRAIN__EASE__NEIGHBORS" in page


def test_the_tables_reference_lists_the_schema(built_site) -> None:
    from tasks.storage.database import sql_table

    site, _ = built_site
    page = (site / "reference" / "tables" / "index.html").read_text()
    for column in sql_table("recommendations").columns:
        assert f"<code>{column.name}</code>" in page, column.name
    assert "scores descending with rank" in page  # a rule of the output suite
