"""Command-line options that map onto config, `recpipe generate`, and the growth report."""

from __future__ import annotations

import pandas as pd
import pytest

from flows.bench.growth import parse_size, report
from flows.cli import _overrides, _parser, main


def overrides(*argv: str) -> dict:
    return _overrides(_parser().parse_args(["run", *argv]))


def test_run_options_map_onto_config_sections() -> None:
    assert overrides("--retrain")["cache"] == {"reuse_models": False}
    assert "cache" not in overrides()
    assert overrides("--runner", "dask", "--dask-workers", "3")["runner"] == {
        "kind": "dask",
        "workers": 3,
    }
    assert overrides("--dask-address", "tcp://10.0.0.5:8786")["runner"] == {
        "kind": "dask",
        "address": "tcp://10.0.0.5:8786",
    }


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
