"""The ``recpipe`` command line: options that map onto config, exit codes and messages,
the stage display, the tables, `recpipe generate`, and the growth report."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.main import get_command

from flows.bench.growth import parse_size, report
from flows.cli import app, main
from flows.cli.options import overrides
from tests.conftest import run_command

REPO = Path(__file__).resolve().parents[2]


def parsed(command: str, *argv: str) -> dict:
    """The options of ``recpipe [--workspace W] <command> argv`` as the command gets them."""
    group = get_command(app)
    parent = group.make_context("recpipe", [command, *argv])
    sub = group.get_command(parent, command)
    return sub.make_context(command, list(argv), parent=parent).params


def run_overrides(*argv: str) -> dict:
    return overrides(None, parsed("run", *argv))


def test_run_options_map_onto_config_sections() -> None:
    assert run_overrides("--retrain")["cache"] == {"reuse_models": False}
    assert "cache" not in run_overrides()
    assert run_overrides("--runner", "dask", "--dask-workers", "3")["runner"] == {
        "kind": "dask",
        "workers": 3,
    }
    assert run_overrides("--dask-address", "tcp://10.0.0.5:8786")["runner"] == {
        "kind": "dask",
        "address": "tcp://10.0.0.5:8786",
    }
    assert run_overrides("--k", "20", "--models", "popularity, ease", "--epochs", "3") == {
        "score": {"k": 20},
        "train": {"models": ["popularity", "ease"], "mult_dae": {"epochs": 3}},
    }


def test_source_options_go_to_their_source_section() -> None:
    movielens = run_overrides("--source", "movielens-100k", "--path", "ml.zip", "--no-verify")
    assert movielens["ingest"] == {
        "source": "movielens-100k",
        "movielens": {"path": "ml.zip", "verify": False},
    }
    files = run_overrides("--source", "files", "--path", "x/", "--user-col", "uid")
    files = files["ingest"]["files"]
    assert files == {"path": "x", "user_col": "uid"}
    assert run_overrides("--delimiter", "tab")["ingest"]["files"]["delimiter"] == "\t"


def test_evaluate_gets_the_source_options_and_keeps_its_own(monkeypatch) -> None:
    import flows.cli.evaluate
    from tasks.errors import ConfigError

    seen = {}

    def load(ctx, options):
        seen.update(options)
        raise ConfigError("stop here")

    monkeypatch.setattr(flows.cli.evaluate, "load", load)
    assert main(["--workspace", "/w", "evaluate", "--k", "5", "--source", "demo"]) == 2
    assert overrides(Path("/w"), seen) == {"workspace": "/w", "ingest": {"source": "demo"}}


def test_serve_and_trigger_options_set_the_schedule() -> None:
    served = overrides(None, parsed("serve", "--cron", "30 1 * * *", "--timezone", "UTC"))
    assert served["schedule"] == {"cron": "30 1 * * *", "timezone": "UTC"}
    assert parsed("trigger", "--wait", "--timeout", "5")["timeout"] == 5.0


def test_a_bad_choice_is_a_usage_error(capsys) -> None:
    assert main(["run", "--source", "nowhere"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["bench", "nothing"]) == 2


def test_global_options_come_before_the_command_and_reach_the_config(tmp_path) -> None:
    """A real process: `--workspace` names where the error looked (exit 2, one line)."""
    done = run_command(
        [sys.executable, "-m", "flows.cli", "--workspace", str(tmp_path / "ws"), "model", "list"],
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"recpipe: error: workspace {tmp_path / 'ws'} does not exist; expected the folder"
    )
    assert not (tmp_path / "ws").exists()  # reading never creates a workspace
    assert "Traceback" not in done.stderr


def test_a_stage_error_names_the_stage(monkeypatch, capsys) -> None:
    import tasks.sources.scale
    from tasks.errors import DataError

    def fail(*args, **kwargs):
        exc = DataError("expected rows, found none")
        exc.recpipe_stage = "ingest"
        raise exc

    monkeypatch.setattr(tasks.sources.scale, "generate_scale", fail)
    assert main(["generate", "/nonexistent/out"]) == 2
    assert capsys.readouterr().err == "recpipe: stage ingest failed: expected rows, found none\n"


def test_generate_writes_a_log_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    out = tmp_path / "data"
    assert main(["generate", str(out), "--interactions", "5k", "--items", "120"]) == 0
    events = pd.read_parquet(out / "interactions")
    assert len(events) == 5000 and events["item_id"].nunique() <= 120
    assert "--source files --path" in capsys.readouterr().out
    assert main(["generate", str(out), "--interactions", "5k"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "other"), "--interactions", "lots"]) == 2
    assert "expected a number like 1M" in capsys.readouterr().err


# -- the stage display -----------------------------------------------------------------------
def emit(stage: str, event: str, **extra) -> None:
    logging.getLogger("recpipe.progress").info(
        "%s %s", stage, event, extra={"stage": stage, "event": event, **extra}
    )


def test_piped_output_gets_one_line_per_stage(capsys) -> None:
    from flows.cli.progress import stage_progress

    logger = logging.getLogger("recpipe.progress")
    before = logger.level, logger.propagate, list(logger.handlers)
    with stage_progress():
        for _ in range(3):  # the lock is taken in three steps: one line
            emit("lock", "start")
            emit("lock", "end", seconds=0.01)
        emit("train", "start")
        emit("train", "epoch", model="mult_dae", epoch=0, epochs=3)
        emit("train", "epoch", model="mult_dae", epoch=2, epochs=3)  # stopped early
        emit("train", "end", seconds=1.5)
        emit("evaluate", "start")
        emit("evaluate", "end", seconds=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "nightly:"
    assert lines[1].split() == ["lock", "0.03", "s"]
    assert lines[2].split() == ["train", "1.50", "s", "mult_dae:", "2/3", "epochs"]
    assert lines[3].split() == ["evaluate", "0.25", "s"]
    assert len(lines) == 4
    assert (logger.level, logger.propagate, logger.handlers) == before  # detached


def test_the_live_display_shows_the_running_stage_and_its_epoch() -> None:
    from rich.console import Console

    from flows.cli.progress import LiveDisplay, ProgressHandler

    display = LiveDisplay("recpipe run")
    handler = ProgressHandler(display)

    def record(stage: str, event: str, **extra) -> logging.LogRecord:
        out = logging.LogRecord("recpipe.progress", logging.INFO, "", 0, "", None, None)
        out.__dict__.update(stage=stage, event=event, **extra)
        return out

    out = io.StringIO()
    Console(file=out, width=100).print(display.render())
    assert "recpipe run: starting" in out.getvalue()
    for r in (
        record("ingest", "start"),
        record("ingest", "end", seconds=0.5),
        record("train", "start"),
        record("train", "epoch", model="two_tower", epoch=3, epochs=10),
    ):
        handler.emit(r)
    out = io.StringIO()
    Console(file=out, width=100).print(display.render())
    text = out.getvalue()
    assert "ingest" in text and "0.5 s" in text
    assert "two_tower epoch 3/10" in text
    with display.board.lock:
        display.board.fail("train")
    out = io.StringIO()
    Console(file=out, width=100).print(display.render())
    assert "✗ train" in out.getvalue()


def test_training_a_keras_model_reports_its_epochs(capsys) -> None:
    from flows.cli.progress import stage_progress
    from tasks.config import TrainConfig
    from tasks.data.model_inputs import FitInputs
    from tasks.train import train_model

    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix((rng.random((20, 12)) < 0.3).astype(np.float32))
    config = TrainConfig.model_validate(
        {"mult_dae": {"epochs": 2, "hidden_dim": 8, "batch_size": 8}}
    )
    with stage_progress():
        emit("train", "start")
        model, _ = train_model("mult_dae", config, FitInputs(matrix, None, None, None))
        emit("train", "end", seconds=1.0)
    assert "mult_dae: 2/2 epochs" in capsys.readouterr().out
    assert not hasattr(model, "_fit_callbacks")  # the callbacks are not kept


# -- tables and summaries ------------------------------------------------------------------------
def test_model_list_derives_a_decision_for_every_version() -> None:
    from flows.cli.model import champion_note, decision

    assert decision("mult_dae", {"promotion.decision": "rejected"}, "popularity") == "rejected"
    assert decision("popularity", {}, "popularity") == "baseline"
    assert decision("ease", {}, "popularity") == "not challenger"
    backfilled = {"promotion.decision": "promoted", "champion.alias_left": "2026-01-01 is older"}
    assert decision("ease", backfilled, "popularity") == (
        "promoted for an older date (backfill): the alias stayed"
    )
    gate = {"promotion.reason": "beats popularity", "champion.reason": "beats popularity"}
    assert champion_note(gate) == ""
    assert champion_note({"champion.reason": "hotfix"}) == "champion by hand: hotfix"
    rolled = {"champion.reason": "rollback from version 7", "champion.rolled_back_at": "t"}
    assert champion_note(rolled) == "champion by rollback from version 7"
    # the gate moved it, whatever its reason says beside the challenger's
    moved = {"champion.by": "gate", "champion.reason": "no champion yet", "promotion.reason": ""}
    assert champion_note(moved) == ""
    assert champion_note({"champion.by": "hand", "champion.reason": "fix"}) == (
        "champion by hand: fix"
    )


def test_status_says_when_the_schedule_is_paused() -> None:
    from flows.status import schedule_line

    name = "recpipe-nightly/recpipe-nightly"
    cron = [{"active": True, "cron": "0 2 * * *", "timezone": "UTC"}]
    paused = {"name": name, "exists": True, "paused": True, "schedules": cron, "status": None}
    assert schedule_line({"schedule": paused}).startswith("schedule: PAUSED")
    served = {**paused, "paused": False, "status": "READY"}
    assert schedule_line({"schedule": served}) == (
        f"schedule: active, '0 2 * * *' (UTC); deployment '{name}' served now"
    )
    assert "no deployment" in schedule_line({"schedule": {"name": name, "exists": False}})


def test_piped_tables_are_not_wrapped(capsys) -> None:
    from flows.cli.output import show, table

    rows = table("run date", ">rows", "~notes")
    rows.add_row("2026-03-02", "1,000", "cached: ingest,validate,features; " + "x" * 200)
    show(rows)
    line = next(x for x in capsys.readouterr().out.splitlines() if "2026-03-02" in x)
    assert "cached: ingest,validate,features" in line and line.rstrip().endswith("x" * 200)


def test_the_leaderboard_table(capsys) -> None:
    from flows.cli.evaluate import leaderboard
    from flows.cli.output import show

    frame = pd.DataFrame(
        {
            "model": ["ease", "mult_dae"],
            "test_ndcg@10": [0.3258, 0.3234],
            "valid_ndcg@10": [0.2630, 0.2671],
            "train_seconds": [1.25, 30.0],
            "epochs": [float("nan"), 12.0],
        }
    )
    show(leaderboard(frame, 10))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "ndcg@10", "valid_ndcg@10", "train_seconds", "epochs"]
    assert lines[2].split() == ["ease", "0.3258", "0.2630", "1.2", "-"]
    assert lines[3].split() == ["mult_dae", "0.3234", "0.2671", "30.0", "12"]


def test_the_mlflow_hint_uses_this_installation(monkeypatch) -> None:
    from flows.cli import summary

    monkeypatch.chdir(REPO)
    hint = summary.tool("mlflow")
    if sys.prefix == sys.base_prefix:
        assert hint == "mlflow"
    else:  # .venv/bin/mlflow from the repository, the absolute path from elsewhere
        assert REPO / hint == Path(sys.executable).parent / "mlflow"


def test_trigger_prints_the_summary_the_run_stored(prefect_harness, capsys) -> None:
    from prefect import flow

    from flows.cli.summary import print_stored_summary
    from flows.operate import stored_summary
    from tasks.report import publish_run_summary

    @flow(name="recpipe-cli-summary-test")
    def night() -> str:
        from prefect.runtime import flow_run

        publish_run_summary(
            {
                "status": "FAILED",
                "run_date": "2026-03-02",
                "run_id": flow_run.id,
                "failed_stage": "validate",
                "error": "DataValidationError: stale data",
            }
        )
        return flow_run.id

    flow_run_id = night()
    text = stored_summary(flow_run_id)
    assert text.startswith("# recpipe nightly 2026-03-02: FAILED")
    print_stored_summary(text, flow_run_id, "/data/recpipe-home")
    out = capsys.readouterr().out
    assert "**stage validate failed**" in out
    assert "--backend-store-uri sqlite:////data/recpipe-home/mlflow/mlflow.db" in out
    assert stored_summary("00000000-0000-0000-0000-000000000000") is None
    print_stored_summary(None, "some-id")
    assert "stored no run summary" in capsys.readouterr().out


# -- recpipe generate, the growth report -----------------------------------------------------------
def test_sizes_parse() -> None:
    assert [parse_size(s) for s in ("1M", "2.5m", "250k", "20000")] == [
        1_000_000,
        2_500_000,
        250_000,
        20_000,
    ]
    with pytest.raises(ValueError, match="at least 1000"):
        parse_size("10")


def test_growth_report_divides_the_time_ratio_by_the_size_ratio() -> None:
    def result(n: int, train: float, score: float) -> dict:
        return {
            "n": n,
            "stage_seconds": {"train": train, "score": score},
            "stage_peak_mb": {"train": 100.0, "score": 200.0},
            "total_seconds": train + score,
            "peak_rss_mb": 200.0,
            "users": n // 50,
            "rows": n // 5,
            "champion": "ease",
            "generate_seconds": 1.0,
        }

    text = report(
        [
            result(1_000_000, 10.0, 2.0),
            result(4_000_000, 20.0, 16.0),
            {"n": 8_000_000, "failed": "exit code -9"},
        ],
        ["ease"],
        1000,
    )
    train = next(line for line in text.splitlines() if line.startswith("train"))
    score = next(line for line in text.splitlines() if line.startswith("score"))
    assert train.split()[-1] == "0.50"  # 2x the time for 4x the data
    assert score.split()[-1] == "2.00"  # 8x the time for 4x the data
    assert "8M: FAILED, exit code -9" in text


def test_status_notes_a_backfilled_promotion_that_left_the_alias() -> None:
    from flows.status import run_notes

    run = {
        "status": "FINISHED",
        "run_date": "2026-01-01",
        "failed_stage": "",
        "error": "",
        "decision": "promoted",
        "champion_outcome": "alias left on the live champion: 2026-01-01 is older than ...",
        "cached": "none",
    }
    assert run_notes(run, set()) == (
        "challenger promoted for this older date; the alias stayed (backfill)"
    )
    assert run_notes({**run, "champion_outcome": "champion moved to v3"}, set()) == (
        "champion promoted"
    )
