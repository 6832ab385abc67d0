import json

import pandas as pd

from flows.bench.leaderboard import format_leaderboard, run_leaderboard, write_leaderboard
from tasks.sources.demo import generate_demo


def test_leaderboard_tunes_on_validation_and_ranks_by_test(tmp_path) -> None:
    events, _ = generate_demo(n_users=200, n_items=120, mean_interactions=20, seed=3)
    logged = []
    frame = run_leaderboard(
        events,
        None,
        "random",
        ["popularity", "ease"],
        k=10,
        log=lambda row, data: logged.append(row),
    )
    assert frame["model"].tolist() == ["ease", "popularity"]  # genre tastes: EASE wins
    assert frame.loc[0, "tried"] == 3 and frame.loc[1, "tried"] == 1
    assert frame.loc[0, "test_ndcg@10"] > frame.loc[1, "test_ndcg@10"]
    assert {
        "test_recall@10",
        "test_hit@10",
        "test_mrr@10",
        "test_coverage@10",
        "test_novelty@10",
        "valid_ndcg@10",
        "train_seconds",
    } <= set(frame.columns)
    assert [r["model"] for r in logged] == ["popularity", "ease"]
    csv_path, json_path = write_leaderboard(frame, tmp_path)
    assert pd.read_csv(csv_path)["model"].tolist() == ["ease", "popularity"]
    assert json.loads(json_path.read_text())[0]["params"]["l2"] > 0
    assert "ndcg@10" in format_leaderboard(frame, 10)
