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


def test_the_demo_friend_graph_has_homophily_and_friends_only_newcomers() -> None:
    from tasks.sources.demo import generate_demo, generate_demo_friends

    events, items = generate_demo(n_users=300, n_items=200, mean_interactions=20, seed=7)
    edges = generate_demo_friends(events, items, mean_friends=6.0, newcomers=4, seed=7)
    again = generate_demo_friends(events, items, mean_friends=6.0, newcomers=4, seed=7)
    pd.testing.assert_frame_equal(edges, again)  # the same inputs, the same rows
    assert (edges["user_id"] != edges["friend_id"]).all()
    pairs = {frozenset(p) for p in zip(edges["user_id"], edges["friend_id"], strict=True)}
    assert len(pairs) == len(edges)  # one row per pair, either way round
    known = set(events["user_id"])
    newcomers = sorted(set(edges["user_id"]) - known)
    assert newcomers == ["n00000", "n00001", "n00002", "n00003"]
    assert edges[edges["user_id"].isin(newcomers)].groupby("user_id").size().min() >= 2
    assert set(edges["friend_id"]) <= known
    # four in five friendships join users whose most watched genre is the same
    genre = events.assign(g=events["item_id"].map(items.set_index("item_id")["primary_genre"]))
    taste = genre.groupby("user_id")["g"].agg(lambda g: g.value_counts().index[0])
    among = edges[edges["user_id"].isin(known)]
    same = (among["user_id"].map(taste) == among["friend_id"].map(taste)).mean()
    assert 0.7 < same < 0.95, same
    assert 2.0 < len(among) * 2 / len(known) < 10.0  # about six friends per user
