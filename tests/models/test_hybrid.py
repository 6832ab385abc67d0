"""The EASE + Mult-DAE hybrid: standardised blend, weight chosen on validation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models import EASE, EASEMultDAE, MultDAE, load_recommender
from models.hybrid import standardised
from models.metrics import ndcg_at_k
from models.ranking import top_k

DAE = {"hidden_dim": 8, "epochs": 5, "batch_size": 8, "dropout": 0.2, "learning_rate": 1e-2}


def test_standardised_rows_have_zero_mean_and_unit_variance() -> None:
    out = standardised(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(out[0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert out[1].tolist() == [0.0, 0.0, 0.0]


def _data(seed: int = 0) -> tuple[sp.csr_matrix, tuple[np.ndarray, sp.csr_matrix]]:
    rng = np.random.default_rng(seed)
    dense = (rng.random((40, 15)) < 0.3).astype(np.float32)
    held = np.zeros_like(dense)
    for u in range(40):  # one held-out item per user becomes the validation target
        seen = np.flatnonzero(dense[u])
        if seen.size > 1:
            held[u, seen[0]], dense[u, seen[0]] = 1.0, 0.0
    users = np.flatnonzero(held.sum(axis=1))
    return sp.csr_matrix(dense), (users, sp.csr_matrix(held[users]))


def test_weight_is_the_best_on_validation_and_the_ends_are_the_components() -> None:
    train, validation = _data()
    model = EASEMultDAE(ease={"l2": 5.0}, mult_dae=DAE, weights=[0.0, 0.5, 1.0], val_k=5)
    model.fit(train, validation=validation)
    scores = model.validation_ndcg_
    assert set(scores) == {"0.0", "0.5", "1.0"}
    assert scores[str(model.weight_)] == max(scores.values())
    users, relevant = validation
    rows = train[users]
    # weight 0 ranks exactly as EASE alone, weight 1 as the Mult-DAE alone
    ease = EASE(l2=5.0).fit(train)
    dae = MultDAE(seed=42, **DAE).fit(train, validation=validation)
    for weight, alone in (("0.0", ease), ("1.0", dae)):
        recommended, _ = top_k(alone.score(users), 5, exclude=rows)
        assert scores[weight] == ndcg_at_k(recommended, relevant, 5)


def test_without_validation_the_default_weight_is_used_and_saved(tmp_path) -> None:
    train, _ = _data(1)
    model = EASEMultDAE(ease={"l2": 5.0}, mult_dae=DAE, default_weight=0.3).fit(train)
    assert model.weight_ == 0.3
    model.save(tmp_path / "h")
    loaded = load_recommender(tmp_path / "h")
    assert loaded.weight_ == 0.3
    np.testing.assert_array_equal(loaded.score(np.arange(5)), model.score(np.arange(5)))


def test_refit_params_fix_the_chosen_weight_and_epochs() -> None:
    train, validation = _data(2)
    model = EASEMultDAE(ease={"l2": 5.0}, mult_dae=DAE, weights=[0.0, 1.0], val_k=5)
    model.fit(train, validation=validation)
    fixed = model.refit_params()
    assert fixed["weights"] == [model.weight_] and fixed["default_weight"] == model.weight_
    best_epoch = int(np.argmax(model.dae_.history_["val_ndcg"])) + 1
    assert fixed["mult_dae"] == {**MultDAE(**DAE).params, "epochs": best_epoch}


def test_the_mult_dae_part_takes_the_hybrid_seed_unless_it_sets_its_own() -> None:
    assert EASEMultDAE(seed=7, mult_dae=DAE).params["mult_dae"] == MultDAE(seed=7, **DAE).params
    own = EASEMultDAE(seed=7, mult_dae={**DAE, "seed": 3}).params["mult_dae"]
    assert own["seed"] == 3
    assert EASEMultDAE(seed=7).params["mult_dae"]["seed"] == 7
    assert EASEMultDAE().params["mult_dae"]["seed"] == 42
