"""RecVAE (Shenbin et al., "RecVAE: A New Variational Autoencoder for Top-N
Recommendations with Implicit Feedback", WSDM 2020).

Mult-VAE (:mod:`models.mult_vae`) with four changes, as in the paper and its code:

* **Encoder**: five dense layers of ``hidden_dim`` units, each followed by swish and
  layer normalisation (epsilon 0.1), each layer's input added to the sum of all the
  earlier layers' outputs (dense residual connections); then the mean and
  log-variance of a ``latent_dim`` code. The decoder is one dense layer.
* **Composite prior**: the KL term is taken against a mixture of the standard
  normal, the posterior of the encoder as it was before the current encoder phase
  (which keeps the encoder from moving far from what the decoder learned) and a
  wide normal (log-variance ``wide_logvar``), weights ``mixture_weights``
  (3/20, 15/20, 2/20). The KL is estimated with the sampled code:
  ``log q(z|x) - log p(z)``.
* **User-specific beta**: each user's KL weight is ``gamma`` times the number of
  their interactions, so a long history, which says more, may move further from
  the prior.
* **Alternating updates**: one training epoch is ``encoder_epochs`` passes updating
  the encoder only (input dropout ``dropout``), then the old encoder takes the
  encoder's weights, then ``decoder_epochs`` passes updating the decoder only,
  without input dropout. Each part has its own Adam optimiser.

At scoring time the code is the posterior mean (no sampling), as for Mult-VAE.
Early stopping, the progress callbacks, batching and scoring are those of every
autoencoder here (:class:`models.mult_dae.AutoencoderRecommender`); ``epochs`` and
``patience`` count alternating epochs. Keras 3 layers; the training step uses the
TensorFlow backend (``tf.GradientTape``); TensorFlow is imported only when a model
is trained.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from models.base import ModelSettings
from models.keras_base import (
    BatchSize,
    Dropout,
    Epochs,
    LearningRate,
    Patience,
    dense_params,
    keras_memory,
)
from models.memory import FLOAT32, DataShape, MemoryEstimate
from models.mult_dae import (
    AUTOENCODER_ACTIVATIONS,
    AutoencoderRecommender,
    AutoencoderSettings,
    dense,
)
from models.width import network_width

# weights of the standard normal, the old encoder's posterior and the wide normal
MIXTURE_WEIGHTS = (3 / 20, 15 / 20, 2 / 20)


def build_encoder(
    n_items: int, hidden_dim: int, latent_dim: int, n_layers: int, seed: int, name: str
) -> Any:
    """Keras model: a normalised (and possibly corrupted) history -> (mu, logvar)."""
    import keras

    inputs = keras.Input(shape=(n_items,), name=f"{name}_input")
    outputs: list[Any] = []
    x = inputs
    for layer in range(n_layers):
        h = dense(hidden_dim, seed + layer, 0.0, f"{name}_dense_{layer + 1}")(x)
        if outputs:  # dense residuals: the sum of every earlier layer's output
            h = keras.layers.Add(name=f"{name}_residual_{layer + 1}")([h, *outputs])
        h = keras.layers.Activation("silu", name=f"{name}_swish_{layer + 1}")(h)
        h = keras.layers.LayerNormalization(epsilon=0.1, name=f"{name}_norm_{layer + 1}")(h)
        outputs.append(h)
        x = h
    mu = dense(latent_dim, seed + n_layers, 0.0, f"{name}_mu")(x)
    logvar = dense(latent_dim, seed + n_layers + 1, 0.0, f"{name}_logvar")(x)
    return keras.Model(inputs, [mu, logvar], name=name)


def log_normal(z: Any, mu: Any, logvar: Any) -> Any:
    """Elementwise log density of ``N(mu, exp(logvar))`` at ``z``."""
    from keras import ops

    return -0.5 * (logvar + math.log(2 * math.pi) + ops.square(z - mu) / ops.exp(logvar))


def composite_log_prior(
    z: Any, old_mu: Any, old_logvar: Any, weights: tuple[float, ...], wide_logvar: float
) -> Any:
    """Elementwise log density of the composite prior at ``z``."""
    from keras import ops

    zeros = ops.zeros_like(z)
    parts = [
        log_normal(z, zeros, zeros),
        log_normal(z, old_mu, old_logvar),
        log_normal(z, zeros, zeros + wide_logvar),
    ]
    weighted = [part + math.log(w) for part, w in zip(parts, weights, strict=True)]
    return ops.logsumexp(ops.stack(weighted, axis=-1), axis=-1)


class RecVAESettings(AutoencoderSettings):
    """Defaults are the paper's code's (hidden 600, latent 200, gamma 0.005, Adam 5e-4,
    batch 500, 3 encoder passes then 1 decoder pass per epoch). ``mixture_weights``: the
    composite prior's weights of the standard normal, the old posterior and the wide
    normal (log-variance ``wide_logvar``)."""

    hidden_dim: int = Field(600, ge=8)
    latent_dim: int = Field(200, ge=2)
    n_layers: int = Field(5, ge=1)
    dropout: Dropout = 0.5
    gamma: float = Field(0.005, ge=0)
    mixture_weights: list[float] = Field(list(MIXTURE_WEIGHTS))
    wide_logvar: float = 10.0
    encoder_epochs: int = Field(3, ge=0)
    decoder_epochs: int = Field(1, ge=0)
    epochs: Epochs = 50
    batch_size: BatchSize = 500
    learning_rate: LearningRate = 5e-4
    patience: Patience = 5

    @field_validator("mixture_weights")
    @classmethod
    def _three_weights(cls, weights: list[float]) -> list[float]:
        if len(weights) != 3 or min(weights) <= 0 or not math.isclose(sum(weights), 1.0):
            raise ValueError(
                "must be 3 positive weights summing to 1 (standard normal, old posterior, "
                "wide normal)"
            )
        return weights


class RecVAE(AutoencoderRecommender):
    """RecVAE: Mult-VAE with a composite prior, a KL weight per user and alternating
    encoder and decoder updates."""

    name: ClassVar[str] = "recvae"
    personalized: ClassVar[bool] = True
    settings_class: ClassVar[type[ModelSettings]] = RecVAESettings

    @classmethod
    def memory_estimate(cls, shape: DataShape, **params: Any) -> MemoryEstimate:
        """An autoencoder's costs (:func:`models.mult_dae.autoencoder_memory`) for an
        encoder of items x hidden, ``n_layers - 1`` hidden x hidden layers (with layer
        norms) and the mean and log-variance, and a latent x items decoder; besides the
        copies every Keras model keeps, the old encoder holds the encoder's weights and
        each epoch hands them over through a numpy copy."""
        p = cls.settings(**params).model_dump()
        hidden, latent = p["hidden_dim"], p["latent_dim"]
        items = network_width(shape.items, p["max_items"])
        encoder = (
            dense_params(items, hidden)
            + (p["n_layers"] - 1) * dense_params(hidden, hidden)
            + p["n_layers"] * 2 * hidden
            + 2 * dense_params(hidden, latent)
        )
        n_params = encoder + dense_params(latent, items)
        return keras_memory(
            "recvae",
            shape,
            p,
            n_params,
            batch_cells=p["batch_size"] * items,
            activation_copies=AUTOENCODER_ACTIVATIONS,
            data={
                "CSR copies of the training matrix, 3 x CSR": 3 * shape.csr_bytes(),
                "old encoder and the weights handed to it, 2 x 4 x encoder parameters": 2
                * FLOAT32
                * encoder,
            },
            output_width=items,
        )

    def _build_network(self) -> Any:
        """The scoring network (history -> logits through the posterior mean); the
        encoder, decoder and old encoder are kept for training."""
        import keras

        p = self.params
        n_items = self.network_items
        seed = p["seed"]
        encoder = build_encoder(
            n_items, p["hidden_dim"], p["latent_dim"], p["n_layers"], seed, "encoder"
        )
        decoder = dense(n_items, seed + 100, 0.0, "decoder")
        inputs = keras.Input(shape=(n_items,), name="history")
        mu, _ = encoder(keras.layers.UnitNormalization(name="l2_normalize")(inputs))
        network = keras.Model(inputs, decoder(mu), name="recvae")
        self._encoder, self._decoder = encoder, decoder
        return network

    def _train(self, data: Any, validation: tuple[np.ndarray, sp.csr_matrix] | None = None) -> None:
        import keras
        import tensorflow as tf
        from keras import ops

        p = self.params
        network = self._new_network(for_training=False)
        self.network_ = network  # the validation callback scores through it
        encoder, decoder = self._encoder, self._decoder
        n_items = self.network_items
        old_encoder = build_encoder(
            n_items, p["hidden_dim"], p["latent_dim"], p["n_layers"], p["seed"], "old_encoder"
        )
        old_encoder.set_weights(encoder.get_weights())
        noise = keras.random.SeedGenerator(p["seed"] + 200)
        weights, wide, gamma = tuple(p["mixture_weights"]), p["wide_logvar"], p["gamma"]

        def negative_elbo(x: Any, dropout: float, with_kl: bool) -> Any:
            normalised = ops.normalize(x, axis=-1, order=2)
            corrupted = (
                keras.random.dropout(normalised, dropout, seed=noise) if dropout else normalised
            )
            mu, logvar = encoder(corrupted, training=True)
            z = mu + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(mu), seed=noise)
            loss = ops.mean(-ops.sum(ops.log_softmax(decoder(z), axis=-1) * x, axis=-1))
            if with_kl:
                old_mu, old_logvar = old_encoder(normalised, training=False)
                log_prior = composite_log_prior(z, old_mu, old_logvar, weights, wide)
                kl = ops.sum(log_normal(z, mu, logvar) - log_prior, axis=-1)
                loss = loss + ops.mean(gamma * ops.sum(x, axis=-1) * kl)
            return loss

        def step(variables: list[Any], optimizer: Any, dropout: float, with_kl: bool) -> Any:
            optimizer.build(variables)

            @tf.function(input_signature=[tf.TensorSpec([None, n_items], tf.float32)])
            def update(x: Any) -> Any:
                with tf.GradientTape() as tape:
                    loss = negative_elbo(x, dropout, with_kl)
                optimizer.apply_gradients(
                    zip(tape.gradient(loss, variables), variables, strict=False)
                )
                return loss

            return update

        adam = keras.optimizers.Adam
        # The KL term does not depend on the decoder: the decoder's step leaves it out.
        encoder_step = step(
            encoder.trainable_variables, adam(p["learning_rate"]), p["dropout"], True
        )
        decoder_step = step(decoder.trainable_variables, adam(p["learning_rate"]), 0.0, False)

        def one_pass(update: Any) -> list[float]:
            losses = [float(update(data[i][0])) for i in range(len(data))]
            data.on_epoch_end()  # reshuffles
            return losses

        callbacks, check = self._training_callbacks(validation)
        callback_list = keras.callbacks.CallbackList(callbacks, model=network)
        network.stop_training = False
        losses: list[float] = []
        callback_list.on_train_begin()
        for epoch in range(p["epochs"]):
            callback_list.on_epoch_begin(epoch)
            encoder_losses, decoder_losses = [], []
            for _ in range(p["encoder_epochs"]):
                encoder_losses += one_pass(encoder_step)
            old_encoder.set_weights(encoder.get_weights())
            for _ in range(p["decoder_epochs"]):
                decoder_losses += one_pass(decoder_step)
            # the negative ELBO of the encoder's passes (the decoder's has no KL term)
            losses.append(float(np.mean(encoder_losses or decoder_losses)))
            callback_list.on_epoch_end(epoch, {"loss": losses[-1]})
            if network.stop_training:
                break
        callback_list.on_train_end()
        self.history_ = self._history(losses, check)
