"""Keras models: early stopping on validation NDCG, KL annealing, cold-start items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models import make_recommender
from models.content import ItemContent
from models.keras_base import KerasRecommender
from models.metrics import ndcg_at_k

KERAS_PARAMS = {  # tiny settings, as in test_contract.FAST_PARAMS
    "mult_dae": {"hidden_dim": 16, "batch_size": 16, "learning_rate": 1e-2},
    "mult_vae": {"hidden_dim": 16, "latent_dim": 8, "batch_size": 16, "learning_rate": 1e-2},
    "recvae": {"hidden_dim": 16, "latent_dim": 8, "batch_size": 16, "learning_rate": 1e-2},
    "gru4rec": {"embedding_dim": 8, "hidden_dim": 16, "max_len": 3, "batch_size": 16},
    "caser": {"embedding_dim": 4, "max_len": 2, "n_h": 2, "n_v": 2, "batch_size": 16},
    "two_tower": {"embedding_dim": 8, "hidden_dims": [16], "batch_size": 16},
    "content_tower": {"embedding_dim": 8, "hidden_dims": [16], "content_dim": 8, "batch_size": 16},
    "hybrid_tower": {"embedding_dim": 8, "hidden_dims": [16], "content_dim": 8, "batch_size": 16},
    "sasrec": {"embedding_dim": 8, "max_len": 3, "n_heads": 1, "batch_size": 16},
    "social_gcn": {"embedding_dim": 8, "batch_size": 16, "learning_rate": 1e-2},
}


def parity_split(n_users: int = 16, n_items: int = 12, seed: int = 0):
    """Even users like even items: 3 seen (train, in a random order) and 3 held out."""
    rng = np.random.default_rng(seed)
    train, held_out, sequences = [], [], []
    for u in range(n_users):
        liked = rng.permutation(np.arange(u % 2, n_items, 2))
        sequences.append(liked[:3])
        train += [(u, i) for i in liked[:3]]
        held_out += [(u, i) for i in liked[3:]]

    def csr(pairs: list[tuple[int, int]]) -> sp.csr_matrix:
        rows, cols = zip(*pairs, strict=True)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))

    return csr(train), csr(held_out), sequences


def parity_friends(n_users: int = 16) -> sp.csr_matrix:
    """Mutual friendships between users of the same parity (u and u + 2)."""
    rows = [u for u in range(n_users)] + [(u + 2) % n_users for u in range(n_users)]
    cols = rows[n_users:] + rows[:n_users]
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_users))
    graph.data[:] = 1.0
    return graph


def parity_content(n_items: int = 12) -> ItemContent:
    """Each item's parity as a category: the content of the models that need it."""
    parity = (np.arange(n_items) % 2 + 2).astype(np.int32)
    return ItemContent(
        {"parity": "category"},
        {"parity": parity},
        {"parity": np.ones(n_items, bool)},
        {"parity": 4},
    )


def test_every_keras_model_is_covered() -> None:
    from models import MODEL_CLASSES

    keras_models = {n for n, c in MODEL_CLASSES.items() if issubclass(c, KerasRecommender)}
    assert keras_models == set(KERAS_PARAMS)


@pytest.mark.parametrize("name", sorted(KERAS_PARAMS))
def test_early_stopping_keeps_the_best_validation_epoch(name: str) -> None:
    train, held_out, sequences = parity_split()
    users = np.arange(train.shape[0])
    params = {**KERAS_PARAMS[name], "epochs": 12, "patience": 2, "val_k": 3}
    model = make_recommender(name, **params)
    social = parity_friends(train.shape[0]) if "social" in model.fit_inputs else None
    content = parity_content(train.shape[1]) if "content" in model.required_inputs else None
    model.fit(train, sequences, validation=(users, held_out), social=social, content=content)
    history = model.history_
    assert set(history) == {"loss", "val_ndcg"}
    assert len(history["loss"]) == len(history["val_ndcg"]) <= 12
    best = int(np.argmax(history["val_ndcg"]))
    stopped_early = len(history["val_ndcg"]) < 12
    assert not stopped_early or len(history["val_ndcg"]) - 1 - best == 2
    # The fitted model is the best epoch's, not the last one's.
    recommended, _ = model.recommend(users, 3)
    assert ndcg_at_k(recommended, held_out, 3) == pytest.approx(max(history["val_ndcg"]))


def opposite_parity(n_users: int, n_items: int) -> sp.csr_matrix:
    """Even users "like" odd items and odd users even items: what training on
    ``parity_split`` moves away from, epoch after epoch."""
    pairs = [(u, i) for u in range(n_users) for i in range((u + 1) % 2, n_items, 2)]
    rows, cols = zip(*pairs, strict=True)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


@pytest.mark.parametrize("name", ["mult_dae", "mult_vae", "recvae"])
def test_autoencoders_stop_after_patience_and_restore_the_best_weights(name: str) -> None:
    """Validated against the opposite parity, validation NDCG is best after the first
    epoch and falls as the model learns: training stops ``patience`` epochs later (far
    before ``epochs``) and the fitted model is the first epoch's, not the last's."""
    train, _, sequences = parity_split()
    users = np.arange(train.shape[0])
    target = opposite_parity(*train.shape)
    patience = 2
    params = {**KERAS_PARAMS[name], "epochs": 12, "patience": patience, "val_k": 3}
    model = make_recommender(name, **params).fit(train, sequences, validation=(users, target))
    values = model.history_["val_ndcg"]
    assert int(np.argmax(values)) == 0
    assert len(values) == len(model.history_["loss"]) == 1 + patience
    recommended, _ = model.recommend(users, 3)
    fitted = ndcg_at_k(recommended, target, 3)
    assert fitted == pytest.approx(values[0])
    assert fitted > values[-1] + 0.02


def test_validation_target_is_checked() -> None:
    train, held_out, _ = parity_split()
    with pytest.raises(
        ValueError, match=r"relevant matrix has shape \(16, 12\), expected \(4, 12\)"
    ):
        make_recommender("mult_dae").fit(train, validation=(np.arange(4), held_out))
    with pytest.raises(ValueError, match="validation relevant matrix is empty"):
        make_recommender("mult_dae").fit(train, validation=(np.arange(16), held_out * 0))


def test_mult_vae_anneals_kl_weight_up_to_the_cap() -> None:
    train, _, _ = parity_split()
    params = {**KERAS_PARAMS["mult_vae"], "epochs": 2, "anneal_cap": 0.3}
    # 16 users, batch 16: one update per epoch; beta is set before each update
    capped = make_recommender("mult_vae", total_anneal_steps=2, **params).fit(train)
    assert float(capped.network_.get_layer("gaussian_code").beta.numpy()) == pytest.approx(0.3)
    rising = make_recommender("mult_vae", total_anneal_steps=10, **params).fit(train)
    assert float(rising.network_.get_layer("gaussian_code").beta.numpy()) == pytest.approx(0.1)


@pytest.fixture(scope="module")
def cold_start_model():
    """Two-tower trained with parity features; item 10 (even) has no interactions."""
    train, _, _ = parity_split(n_users=24)
    train = train.tolil()
    train[:, 10] = 0
    train = train.tocsr()
    train.eliminate_zeros()
    n_items = train.shape[1]
    rng = np.random.default_rng(0)
    parity = np.eye(2)[np.arange(n_items) % 2]
    features = np.hstack([parity, 0.1 * rng.normal(size=(n_items, 2))])
    params = {**KERAS_PARAMS["two_tower"], "epochs": 30, "learning_rate": 3e-2}
    model = make_recommender("two_tower", id_dropout=0.5, **params)
    return model.fit(train, item_features=features), train


def test_two_tower_scores_an_item_without_interactions_from_its_features(cold_start_model):
    model, train = cold_start_model
    assert train[:, 10].nnz == 0
    scores = model.score(np.arange(24))
    odd_items = np.arange(1, 12, 2)
    even_users, odd_users = np.arange(0, 24, 2), np.arange(1, 24, 2)
    # even users rank the cold even item above the odd items, odd users below them.
    # Chance is half of the (user, odd item) pairs; over seeds 1, 2, 3, 7 and 42 these
    # settings order 96-100% of the pairs for even users and 100% for odd users.
    above = scores[even_users, 10][:, None] > scores[np.ix_(even_users, odd_items)]
    below = scores[odd_users, 10][:, None] < scores[np.ix_(odd_users, odd_items)]
    assert above.mean() >= 0.9
    assert below.mean() >= 0.9


def test_two_tower_users_without_history_share_one_ranking(cold_start_model):
    model, train = cold_start_model
    history = train.tolil()
    history[[0, 3], :] = 0
    scores = model.score(np.array([0, 3]), history=history.tocsr())
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)


def test_mult_dae_halves_its_learning_rate_on_a_validation_plateau() -> None:
    """Validated against the opposite parity, no epoch after the first improves: with
    ``lr_plateau=1`` each of the 3 later epochs halves the rate; without it, it stays."""
    train, _, _ = parity_split()
    users = np.arange(train.shape[0])
    target = opposite_parity(*train.shape)
    params = {**KERAS_PARAMS["mult_dae"], "epochs": 4, "patience": 10, "val_k": 3}
    for plateau, expected in ((1, 1e-2 / 8), (0, 1e-2)):
        model = make_recommender("mult_dae", lr_plateau=plateau, **params)
        model.fit(train, validation=(users, target))
        assert int(np.argmax(model.history_["val_ndcg"])) == 0
        rate = float(model.network_.optimizer.learning_rate.numpy())
        assert rate == pytest.approx(expected)
