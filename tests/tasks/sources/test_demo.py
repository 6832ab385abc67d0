import pandas as pd

from tasks.sources.demo import generate_demo


def test_deterministic_and_well_formed() -> None:
    a, items = generate_demo(n_users=50, n_items=60, seed=3, end="2026-02-01")
    b, _ = generate_demo(n_users=50, n_items=60, seed=3, end="2026-02-01")
    pd.testing.assert_frame_equal(a, b)
    assert a["timestamp"].max() <= pd.Timestamp("2026-02-01", tz="UTC")
    assert a["timestamp"].min() >= pd.Timestamp("2026-02-01", tz="UTC") - pd.Timedelta(weeks=8)
    assert set(a["item_id"]) <= set(items["item_id"])
    assert not a.duplicated(["user_id", "item_id"]).any()
    assert a["value"].between(1, 5).all()


def test_users_mostly_watch_their_favourite_genre() -> None:
    events, items = generate_demo(n_users=200, n_items=600, mean_interactions=20, seed=1)
    genre = events.merge(items[["item_id", "primary_genre"]], on="item_id")
    top_share = genre.groupby("user_id")["primary_genre"].agg(
        lambda g: g.value_counts(normalize=True).iloc[0]
    )
    assert top_share.median() > 0.5


def test_long_tail_popularity() -> None:
    events, _ = generate_demo(n_users=200, n_items=600, mean_interactions=20, seed=2)
    counts = events["item_id"].value_counts()
    top10 = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top10 > 0.3  # uniform popularity would give 0.1
