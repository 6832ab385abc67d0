"""The scoring benchmark at a tiny size, so that its code keeps running."""

from __future__ import annotations

from flows.bench.scoring import benchmark, report


def test_scoring_benchmark_runs_the_nightly_path_and_reports_it() -> None:
    result = benchmark(n_users=300, n_items=200, dim=8, k=5, batch=64, shard_rows=2_000)
    assert result["config"]["explain"] is True  # the nightly's default
    # every user gets k items (20 seen and 3 unavailable of 200), at 1x and 2x users
    assert result["recpipe"]["rows"] == 300 * 5
    assert result["recpipe_2x"]["rows"] == 600 * 5
    assert result["recpipe"]["shards"] == 3 and result["recpipe_2x"]["shards"] == 6
    r = result["recpipe"]
    parts = r["plan_seconds"] + r["load_seconds"] + r["score_seconds"] + r["publish_seconds"]
    assert abs(parts - r["seconds"]) < 1e-6
    assert result["throughput_ratio"] == (
        r["users_per_second"] / result["reference"]["users_per_second"]
    )
    text = report(result)
    assert "300 users x 200 items" in text and "explanations on" in text
    assert "loading the model, vocabularies and catalog" in text
    assert f"throughput ratio recpipe/reference: {result['throughput_ratio']:.2f}" in text
