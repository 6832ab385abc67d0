"""RecVAE's parts: the composite prior's density and the alternating updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import make_recommender
from models.recvae import MIXTURE_WEIGHTS, composite_log_prior
from tests.models.test_contract import checkerboard

TINY = {"hidden_dim": 16, "latent_dim": 4, "batch_size": 8, "learning_rate": 1e-2, "epochs": 2}


def normal_pdf(z: np.ndarray, mu: float | np.ndarray, var: float | np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (z - mu) ** 2 / var) / np.sqrt(2 * math.pi * var)


def test_composite_prior_is_the_weighted_mixture_of_its_three_normals() -> None:
    from keras import ops

    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4)).astype(np.float32)
    old_mu = rng.normal(size=(3, 4)).astype(np.float32)
    old_logvar = (0.5 * rng.normal(size=(3, 4))).astype(np.float32)
    got = ops.convert_to_numpy(composite_log_prior(z, old_mu, old_logvar, MIXTURE_WEIGHTS, 10.0))
    w_standard, w_old, w_wide = MIXTURE_WEIGHTS
    expected = np.log(
        w_standard * normal_pdf(z, 0.0, 1.0)
        + w_old * normal_pdf(z, old_mu, np.exp(old_logvar))
        + w_wide * normal_pdf(z, 0.0, math.exp(10.0))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert pytest.approx((0.15, 0.75, 0.10)) == MIXTURE_WEIGHTS


def _weights(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    network = model.network_
    encoder = network.get_layer("encoder").get_weights()
    decoder = network.get_layer("decoder").get_weights()
    return encoder, decoder


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def initial():
    """The seeded starting weights: a fit of zero epochs changes nothing."""
    return _weights(make_recommender("recvae", **{**TINY, "epochs": 0}).fit(checkerboard()))


def test_encoder_phase_updates_the_encoder_only(initial) -> None:
    encoder_only = make_recommender("recvae", decoder_epochs=0, **TINY).fit(checkerboard())
    encoder, decoder = _weights(encoder_only)
    assert not _same(encoder, initial[0])
    assert _same(decoder, initial[1])


def test_decoder_phase_updates_the_decoder_only(initial) -> None:
    decoder_only = make_recommender("recvae", encoder_epochs=0, **TINY).fit(checkerboard())
    encoder, decoder = _weights(decoder_only)
    assert _same(encoder, initial[0])
    assert not _same(decoder, initial[1])


def test_history_counts_alternating_epochs() -> None:
    model = make_recommender("recvae", **{**TINY, "epochs": 3}).fit(checkerboard())
    assert len(model.history_["loss"]) == 3
    assert all(math.isfinite(v) for v in model.history_["loss"])


def test_mixture_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="3 positive weights summing to 1"):
        make_recommender("recvae", mixture_weights=[0.5, 0.5])
