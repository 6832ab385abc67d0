import numpy as np
import pandas as pd
import pytest

from tasks.sources.demo import demo_releases, generate_demo

END = pd.Timestamp("2026-02-01", tz="UTC")


def test_deterministic_and_well_formed() -> None:
    a, items = generate_demo(n_users=50, n_items=60, seed=3, end="2026-02-01")
    b, items_b = generate_demo(n_users=50, n_items=60, seed=3, end="2026-02-01")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(items, items_b)
    other, _ = generate_demo(n_users=50, n_items=60, seed=4, end="2026-02-01")
    assert not a["item_id"].equals(other["item_id"])  # the seed matters
    assert a["timestamp"].max() <= pd.Timestamp("2026-02-01", tz="UTC")
    assert a["timestamp"].min() >= pd.Timestamp("2026-02-01", tz="UTC") - pd.Timedelta(weeks=8)
    assert set(a["item_id"]) <= set(items["item_id"])
    assert not a.duplicated(["user_id", "item_id"]).any()
    assert a["value"].between(1, 5).all()


def test_users_mostly_watch_their_favourite_genre() -> None:
    events, items = generate_demo(n_users=200, n_items=600, mean_interactions=20, seed=1, drift=0)
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


def _genre(events: pd.DataFrame, items: pd.DataFrame) -> pd.Series:
    return events["item_id"].map(items.set_index("item_id")["primary_genre"])


def test_no_item_is_watched_before_its_release_and_new_items_arrive() -> None:
    shape = {"n_items": 200, "seed": 4, "end": END, "new_items_share": 0.2}
    events, items = generate_demo(n_users=300, mean_interactions=20, **shape)
    released = demo_releases(**shape)
    assert released.index.tolist() == items["item_id"].tolist()
    first_seen = events.groupby("item_id")["timestamp"].min()
    assert (first_seen >= released[first_seen.index]).all()
    start = END - pd.Timedelta(weeks=8)
    arrivals = released[released > start].index
    assert 25 <= len(arrivals) <= 55  # about 20% of 200 items come out during the span
    assert (released[~released.index.isin(arrivals)] >= start - pd.Timedelta(days=365)).all()
    assert (released.dt.normalize() == released).all()  # each on a day, at midnight
    # most arrivals are watched, and only once they are out
    assert first_seen.index.isin(arrivals).sum() >= 0.8 * len(arrivals)
    late = events[events["item_id"].isin(arrivals)]
    assert (late["timestamp"] >= late["item_id"].map(released)).all()
    # an arrival is titled with its release year
    year = items.set_index("item_id").loc[arrivals, "year"]
    assert (year == released[arrivals].dt.year).all()


def test_without_drift_every_item_is_out_before_the_span() -> None:
    released = demo_releases(n_items=200, seed=4, end=END, drift=0, new_items_share=0.2)
    assert (released.iloc[:200] < END - pd.Timedelta(weeks=8)).all()
    assert (released.iloc[200:] == END).all()  # but the upcoming ones, out on the end day


@pytest.mark.parametrize("half_life_weeks", [2.0, 1000.0])
def test_a_releases_pull_fades_with_its_half_life(half_life_weeks: float) -> None:
    shape = {"n_items": 600, "seed": 5, "end": END}
    events, _ = generate_demo(
        n_users=1500, mean_interactions=15, half_life_weeks=half_life_weeks, **shape
    )
    released = demo_releases(**shape)
    # the items out in the span's first three weeks, each watched for five weeks or more
    start = END - pd.Timedelta(weeks=8)
    arrivals = released[(released > start) & (released < start + pd.Timedelta(weeks=3))]
    day = events["timestamp"].dt.floor("D")
    share = 1.0 / day.map(day.value_counts())  # each event's share of its day's events
    age = events["timestamp"] - events["item_id"].map(arrivals)
    week = (age // pd.Timedelta(weeks=1)).dropna()
    by_week = share[week.index].groupby(week).sum()
    # the first two weeks after release against the fourth and fifth: about 2.3 when the
    # pull halves every two weeks, about 1 when it holds
    ratio = (by_week[0] + by_week[1]) / (by_week[3] + by_week[4])
    assert (ratio > 1.7) == (half_life_weeks < 5), ratio


def _mix(genre: pd.Series, events: pd.DataFrame, weeks_before_end: int) -> pd.Series:
    since = END - pd.Timedelta(weeks=weeks_before_end)
    inside = (events["timestamp"] >= since) & (events["timestamp"] < since + pd.Timedelta(weeks=2))
    return genre[inside].value_counts(normalize=True)


@pytest.mark.parametrize("drift", [1.0, 0.0])
def test_the_genre_mix_moves_with_drift_and_holds_still_without(drift: float) -> None:
    events, items = generate_demo(
        n_users=3000, n_items=500, mean_interactions=8, seed=1, end=END, drift=drift
    )
    genre = _genre(events, items)
    first, last = _mix(genre, events, 8), _mix(genre, events, 2)
    moved = 0.5 * first.sub(last, fill_value=0).abs().sum()  # total variation distance
    if drift:
        assert moved > 0.15, moved
    else:
        assert moved < 0.1, moved  # sampling noise: about 0.06


@pytest.mark.parametrize("drift", [1.0, 0.0])
def test_with_drift_a_users_recent_events_predict_the_next_better_than_old_ones(
    drift: float,
) -> None:
    events, items = generate_demo(
        n_users=1000, n_items=500, mean_interactions=15, seed=2, end=END, drift=drift
    )
    genre = events.assign(genre=_genre(events, items)).sort_values(["user_id", "timestamp"])
    old, recent = [], []
    for _, history in genre.groupby("user_id")["genre"]:
        if len(history) < 12:
            continue
        first, middle, last = (pd.Series(part) for part in np.array_split(history.to_numpy(), 3))
        # the share of the last third's events in genres as often as the earlier thirds had them
        old.append(last.map(first.value_counts(normalize=True)).fillna(0).mean())
        recent.append(last.map(middle.value_counts(normalize=True)).fillna(0).mean())
    gain = np.mean(recent) - np.mean(old)
    if drift:
        assert gain > 0.03, gain
    else:
        assert gain < 0.01, gain


def test_popular_lately_is_not_what_was_popular_before_with_drift() -> None:
    def agreement(drift: float) -> float:
        events, _ = generate_demo(
            n_users=1000, n_items=300, mean_interactions=15, seed=6, end=END, drift=drift
        )
        lately = events["timestamp"] >= END - pd.Timedelta(weeks=1)
        before = events["timestamp"] < END - pd.Timedelta(weeks=4)
        counts = events.loc[lately, "item_id"].value_counts()
        earlier = events.loc[before, "item_id"].value_counts().reindex(counts.index, fill_value=0)
        return float(counts.corr(earlier, method="spearman"))  # rank agreement, -1..1

    assert agreement(1.0) < 0.55
    assert agreement(0.0) > 0.6


def test_a_small_catalogue_with_half_its_items_arriving_still_fills_every_history() -> None:
    shape = {"n_items": 20, "seed": 2, "end": END, "new_items_share": 0.5}
    events, _ = generate_demo(n_users=200, mean_interactions=30, **shape)
    released = demo_releases(**shape)
    out_first = int((released < END - pd.Timedelta(weeks=8)).sum())
    per_user = events.groupby("user_id").size()
    assert per_user.min() >= 3 and per_user.max() == min(10, out_first)  # heavy users capped
    assert not events.duplicated(["user_id", "item_id"]).any()
    assert (events["timestamp"] >= events["item_id"].map(released)).all()


def test_drift_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match=r"drift must be in 0\.\.1"):
        generate_demo(n_users=10, n_items=20, drift=1.5)
    with pytest.raises(ValueError, match="new_items_share"):
        generate_demo(n_users=10, n_items=20, new_items_share=0.9)


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
