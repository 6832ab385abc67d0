"""Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

The encoder maps the L2-normalised, dropout-corrupted history to the mean and
log-variance of a Gaussian latent code; the decoder maps a sample of it to one
logit per item. The loss is the multinomial negative log-likelihood of the
history plus ``beta`` times the KL divergence to the standard normal prior, with
``beta`` annealed linearly from 0 over ``total_anneal_steps`` updates and capped
at ``anneal_cap`` (the paper's "partially regularised" objective). At scoring
time the code is the mean (no sampling), as in the paper.

``noise_std`` scales the reparameterisation noise: 1 samples the code from the
posterior, as in the paper; RecBole's MultiVAE draws the noise with standard
deviation 0.01, which with its 200,000 annealing steps (beta stays near 0 on a
small dataset) makes it close to a denoising autoencoder with a bottleneck.

Shares the loss, batching and scoring with Mult-DAE (:mod:`models.mult_dae`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from models.base import ModelSettings
from models.keras_base import Dropout, Epochs, Patience, dense_params
from models.memory import DataShape, MemoryEstimate
from models.mult_dae import (
    AutoencoderRecommender,
    AutoencoderSettings,
    autoencoder_memory,
    corrupted_input,
    dense,
)
from models.width import network_width


def _gaussian_code_layer(seed: int, noise_std: float = 1.0) -> Any:
    """Layer: (mu, logvar) -> z; samples and adds ``beta * KL`` as a loss in training."""
    import keras
    from keras import ops

    class GaussianCode(keras.layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.beta = self.add_weight(
                shape=(), initializer="zeros", trainable=False, name="kl_beta"
            )

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            mu, logvar = inputs
            if not training:
                return mu
            kl = 0.5 * ops.mean(ops.sum(ops.exp(logvar) + ops.square(mu) - 1.0 - logvar, axis=-1))
            self.add_loss(self.beta * kl)
            eps = keras.random.normal(ops.shape(mu), stddev=noise_std, seed=self.seed_generator)
            return mu + ops.exp(0.5 * logvar) * eps

    return GaussianCode(name="gaussian_code")


def build_vae(
    n_items: int,
    hidden_dim: int,
    latent_dim: int,
    dropout: float,
    l2: float,
    seed: int,
    noise_std: float = 1.0,
) -> Any:
    """The Mult-VAE as a functional Keras model mapping histories to item logits."""
    import keras

    inputs, x = corrupted_input(n_items, dropout, seed)
    h = dense(hidden_dim, seed, l2, "encoder", activation="tanh")(x)
    mu = dense(latent_dim, seed + 1, l2, "z_mean")(h)
    logvar = dense(latent_dim, seed + 2, l2, "z_log_var")(h)
    z = _gaussian_code_layer(seed + 3, noise_std)([mu, logvar])
    h_dec = dense(hidden_dim, seed + 4, l2, "decoder_hidden", activation="tanh")(z)
    logits = dense(n_items, seed + 5, l2, "decoder")(h_dec)
    return keras.Model(inputs, logits, name="mult_vae")


def kl_annealing(anneal_cap: float, total_anneal_steps: int) -> Any:
    """Keras callback setting ``beta = min(anneal_cap, updates / total_anneal_steps)``."""
    import keras

    class _KLAnnealing(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.updates = 0

        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            beta = min(anneal_cap, self.updates / max(total_anneal_steps, 1))
            self.model.get_layer("gaussian_code").beta.assign(beta)
            self.updates += 1

    return _KLAnnealing()


class MultVAESettings(AutoencoderSettings):
    """``hidden_dim`` 600 and ``latent_dim`` 200 as in the paper; the KL weight rises
    linearly over ``total_anneal_steps`` updates up to ``anneal_cap``; ``noise_std``
    scales the sampling noise (1: the paper)."""

    hidden_dim: int = Field(600, ge=8)
    latent_dim: int = Field(200, ge=2)
    dropout: Dropout = 0.5
    l2: float = Field(0.0, ge=0)
    anneal_cap: float = Field(0.2, ge=0, le=1)
    total_anneal_steps: int = Field(20000, ge=1)
    noise_std: float = Field(1.0, ge=0)
    epochs: Epochs = 50
    patience: Patience = 5


class MultVAE(AutoencoderRecommender):
    """Mult-VAE with KL annealing."""

    name: ClassVar[str] = "mult_vae"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = MultVAESettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """Mult-DAE's costs with the VAE's layers: items x hidden, hidden x latent (mean
        and log-variance), latent x hidden and hidden x items."""
        p = cls.settings(**params).model_dump()
        hidden, latent = p["hidden_dim"], p["latent_dim"]
        items = network_width(shape.items, p["max_items"])
        n_params = (
            dense_params(items, hidden)
            + 2 * dense_params(hidden, latent)
            + dense_params(latent, hidden)
            + dense_params(hidden, items)
        )
        return autoencoder_memory("mult_vae", shape, p, n_params)

    def _build_network(self) -> Any:
        p = self.params
        return build_vae(
            self.network_items,
            p["hidden_dim"],
            p["latent_dim"],
            p["dropout"],
            p["l2"],
            p["seed"],
            p["noise_std"],
        )

    def _callbacks(self) -> list[Any]:
        return [kl_annealing(self.params["anneal_cap"], self.params["total_anneal_steps"])]
