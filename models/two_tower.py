"""Two-tower retrieval model (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations", RecSys 2019; Covington et al., YouTube DNN, RecSys 2016).

* User tower: the mean of the user's history (a bag of items, so users are folded
  in from their current history without retraining) -> dense layers -> unit vector;
  with ``fit(..., user_content=ItemContent)`` (row u: user u's attributes,
  :mod:`models.user_content`) and ``use_user_content``, the encoded attributes are
  concatenated with the bag first (a user beyond the fitted ones: no attributes).
* Item tower: an item-id embedding, concatenated with the item's content -> dense
  layers -> unit vector. The content is the typed catalogue content when
  ``fit(..., content=ItemContent)`` gives it (each content encoded by
  :mod:`models.content_encoders`, images by a small CNN trained with the rest; the
  contents ``skip_content`` names left out, ``use_content=False`` ignores it all);
  else the flat features of ``fit(..., item_features=F)`` (F: n_items x d floats).
  The model keeps its items' content rows (saved with it as ``.npy``), and scores
  items nobody has interacted with from their content alone
  (:class:`models.content.ContentScoring`: ``score_content``, ``content_vectors``).
* Score = cosine(user, item) / ``temperature``.
* ``loss="softmax"``: in-batch sampled softmax over the batch's positive items,
  same-item collisions masked, with (``logq_correction=True``) the logQ correction
  of Yi et al.: subtract the log of the item's share of training pairs, the
  probability that it is sampled as an in-batch negative. ``loss="bpr"``: Rendle et
  al.'s BPR with one uniformly sampled negative per positive.

Training pairs are (user, item) interactions; the user's input is the user's
history *without* that item, so the model learns to predict held-out items.

Cold start. An item with no training interactions has an untrained id embedding,
so at scoring time its id part is zeroed and it is scored from its content
features alone; ``id_dropout`` zeroes the id part of random training items so the
tower learns to do that (DropoutNet, Volkovs et al., NeurIPS 2017). With content and
``id_dropout > 0`` the model is a hybrid: collaborative where an item has interactions
(its id embedding), content-based where not (``hybrid_tower`` registers it with
``id_dropout`` 0.5); :mod:`models.content_tower` has no id part at all. A user with
no history has an all-zero bag: the user tower then outputs one learned
"anonymous user" vector, i.e. every such user gets the same non-personalised
ranking.

Wide catalogs: at least ``ann_min_items`` items (default 100,000; 0 = never), the item
tower's outputs are indexed in an HNSW graph (:mod:`models.ann`) at the end of ``fit``
and on ``load`` (saved with the weights), and each user's retrieved candidates are
ranked (scored exactly) instead of every item; below that width scoring is dense.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from models.ann import (
    ANN_MIN_ITEMS,
    AnnMinItems,
    IndexedScoring,
)
from models.base import ModelSettings
from models.content import ContentScoring, ItemContent
from models.content_encoders import (
    ContentShape,
    check_layout,
    content_arrays,
    content_encoder,
    load_content,
    save_content,
    select_content,
)
from models.keras_base import (
    BatchSize,
    Dropout,
    Epochs,
    KerasRecommender,
    KerasTrainingSettings,
    SeededInitializers,
    shuffled_batches,
)
from models.memory import (
    DataShape,
    MemoryEstimate,
)
from models.tower_losses import _in_batch_logits, bpr_loss
from models.user_content import kept_user_content, user_arrays, user_encoder


class TowerSettings(KerasTrainingSettings):
    """Each tower: dense ReLU layers of ``hidden_dims`` units, then ``embedding_dim``;
    ``loss`` "softmax" (in-batch, at ``temperature``, with the logQ correction when
    ``logq_correction``) or "bpr"; ``l2`` on the dense weights; ``ann_min_items``: rank
    through an index of the item vectors from this many items (0: never). With typed
    content (``fit(content=...)``): each content encoded into ``content_dim`` floats
    (:mod:`models.content_encoders`), leaving out the contents ``skip_content`` names, by
    name or by kind (``["image"]``)."""

    embedding_dim: int = Field(64, ge=4)
    hidden_dims: list[int] = Field([128])
    loss: Literal["softmax", "bpr"] = "softmax"
    temperature: float = Field(0.1, gt=0)
    logq_correction: bool = True
    l2: float = Field(0.0, ge=0)
    epochs: Epochs = 20
    batch_size: BatchSize = 256
    ann_min_items: AnnMinItems = ANN_MIN_ITEMS
    content_dim: int = Field(32, ge=1)
    skip_content: list[str] = Field(default_factory=list)
    use_user_content: bool = True


class TwoTowerSettings(TowerSettings):
    """:class:`TowerSettings`, and ``id_dropout``: the share of training items whose id
    part is zeroed (cold start; above 0 the model is a hybrid of ids and content);
    ``use_content``: read the typed content when ``fit`` gets it (else the item tower is
    ids and the flat ``item_features``, as without content)."""

    id_dropout: Dropout = 0.0
    use_content: bool = True


class TwoTower(IndexedScoring, ContentScoring, KerasRecommender):
    """User tower over the history bag, item tower over id (+ content)."""

    name: ClassVar[str] = "two_tower"
    personalized: ClassVar[bool] = True
    fitted_attributes: ClassVar[tuple[str, ...]] = (
        "train_matrix_",
        "item_features_",
        "content_",
        "user_content_",
        "network_",
        "history_",
    )
    fit_inputs: ClassVar[tuple[str, ...]] = (
        "item_features",
        "validation",
        "content",
        "user_content",
    )
    inputs: ClassVar[frozenset[str]] = frozenset({"content", "images"})
    settings_class: ClassVar[type[ModelSettings]] = TwoTowerSettings
    #: the item tower reads the item's id embedding (a content model's does not)
    uses_ids: ClassVar[bool] = True
    #: the content a memory estimate assumes when it is not told (None: no content)
    assumed_content: ClassVar[ContentShape | None] = None

    #: float32 batch x n_items arrays alive in one training step: the dense histories
    #: (numpy and tensor) and the bag they are divided into
    ACTIVATIONS = 4

    @classmethod
    def memory_estimate(
        cls, shape: DataShape, content: ContentShape | None = None, **params: Any
    ) -> MemoryEstimate:
        """A user tower reading an items-wide bag (an items x dim layer), an item tower
        over items x dim id embeddings, each with its dense layers; a batch is
        batch_size dense histories. Its training pairs (one per interaction) are held
        as int64 users and int32 items beside a COO copy; scoring and validation run the
        item tower over every item (no flat content features counted: they are the
        caller's). With typed ``content`` (a :class:`ContentShape`; default the class's
        ``assumed_content``): the content rows the model keeps (images: items x side x
        side x 3 bytes), the encoders' weights and a batch's encoder activations (the
        images' convolutions), in training and when the item tower runs over every item.
        With the index (at least ``ann_min_items`` items) scoring holds the graph of the
        item vectors and a block's candidates instead of a block's dense scores; the user
        tower still reads each block's items-wide histories."""
        from models.two_tower_memory import tower_memory

        p = cls.settings(**params).model_dump()
        content = content or cls.assumed_content
        return tower_memory(cls.name, cls.uses_ids, cls.ACTIVATIONS, shape, p, content)

    # -- network -----------------------------------------------------------------
    def _mlp(self, x: Any, prefix: str, init: SeededInitializers) -> Any:
        import keras

        p = self.params
        reg = keras.regularizers.L2(p["l2"]) if p["l2"] > 0 else None
        for n, units in enumerate(p["hidden_dims"]):
            x = keras.layers.Dense(
                units,
                activation="relu",
                kernel_initializer=init.glorot(),
                kernel_regularizer=reg,
                name=f"{prefix}_hidden{n}",
            )(x)
        x = keras.layers.Dense(
            p["embedding_dim"],
            kernel_initializer=init.glorot(),
            kernel_regularizer=reg,
            name=f"{prefix}_out",
        )(x)
        return keras.layers.UnitNormalization(name=f"{prefix}_unit")(x)

    def _towers(self) -> tuple[Any, Any]:
        import keras
        from keras import ops

        n_items = self.train_matrix_.shape[1]
        dim = self.params["embedding_dim"]
        init = SeededInitializers(self.params["seed"])
        history = keras.Input(shape=(n_items,), name="history")
        bag = history / ops.maximum(ops.sum(history, axis=-1, keepdims=True), 1.0)
        bag = keras.layers.Dense(dim, kernel_initializer=init.glorot(), name="user_bag")(bag)
        user_inputs: Any = history
        if self.user_content_.kinds:
            attributes, vector = user_encoder(self.user_content_, self.params["content_dim"], init)
            user_inputs = {"history": history, **attributes}
            bag = keras.layers.Concatenate(name="bag_and_attributes")([bag, vector])
        user_tower = keras.Model(user_inputs, self._mlp(bag, "user", init), name="user_tower")

        inputs: dict[str, Any] = {}
        parts = []
        if self.uses_ids:
            item = keras.Input(shape=(), dtype="int32", name="item")
            keep = keras.Input(shape=(), name="keep")
            inputs.update(item=item, keep=keep)
            ids = keras.layers.Embedding(
                n_items, dim, embeddings_initializer=init.uniform(), name="item_id_embedding"
            )(item)
            parts.append(ids * ops.expand_dims(keep, -1))
        if self.content_.kinds:
            content_inputs, vector = content_encoder(
                self.content_, self.params["content_dim"], init
            )
            inputs.update(content_inputs)
            parts.append(vector)
        elif self.item_features_.shape[1]:
            features = keras.layers.Embedding(
                n_items,
                self.item_features_.shape[1],
                embeddings_initializer="zeros",  # replaced by the features below
                trainable=False,
                name="item_features",
            )
            parts.append(features(inputs["item"]))
            features.embeddings.assign(self.item_features_)
        x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="id_and_content")(parts)
        item_tower = keras.Model(inputs, self._mlp(x, "item", init), name="item_tower")
        return user_tower, item_tower

    @staticmethod
    def _inputs_like(tower: Any, prefix: str) -> dict[str, Any]:
        """Fresh Keras inputs for one call of ``tower``, named ``prefix`` + its input names."""
        import keras

        return {
            prefix + key: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=prefix + key)
            for key, t in tower.input.items()
        }

    def _build_network(self) -> Any:
        import keras
        from keras import ops

        user_tower, item_tower = self._towers()
        n_items = self.train_matrix_.shape[1]
        history = keras.Input(shape=(n_items,), name="history")
        positive = self._inputs_like(item_tower, "")
        item = positive.get("item", None)
        if item is None:  # a content model: the ids only tell in-batch collisions apart
            item = keras.Input(shape=(), dtype="int32", name="item")
        attributes = self._inputs_like(user_tower, "") if self.user_content_.kinds else {}
        attributes.pop("history", None)
        users = user_tower({"history": history, **attributes} if attributes else history)
        positives = item_tower(positive)
        temperature = self.params["temperature"]
        inputs = {"history": history, **attributes, **positive, "item": item}
        if self.params["loss"] == "softmax":
            log_q = keras.Input(shape=(), name="log_q")
            out = _in_batch_logits(temperature)([users, positives, item, log_q])
            inputs["log_q"] = log_q
        elif self.params["loss"] == "bpr":
            negative = self._inputs_like(item_tower, "negative_")
            negatives = item_tower({key[len("negative_") :]: t for key, t in negative.items()})
            out = ops.sum(users * (positives - negatives), axis=-1) / temperature
            inputs.update(negative)
        else:
            raise ValueError(
                f"{self.name}: loss must be 'softmax' or 'bpr', got {self.params['loss']!r}"
            )
        return keras.Model(inputs, out, name=self.name)

    def _loss(self) -> Any:
        import keras

        if self.params["loss"] == "bpr":
            return bpr_loss
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # -- fitting -----------------------------------------------------------------
    def _fit(
        self,
        matrix: sp.csr_matrix,
        item_features: np.ndarray | None = None,
        validation: tuple[np.ndarray, sp.csr_matrix] | None = None,
        content: ItemContent | None = None,
        user_content: ItemContent | None = None,
    ) -> None:
        n_items = matrix.shape[1]
        self._item_vectors: np.ndarray | None = None
        self.content_ = self._kept_content(content, n_items)
        use = self.params.get("use_user_content", True)
        self.user_content_ = kept_user_content(user_content if use else None, matrix.shape[0])
        self.item_features_: np.ndarray = (
            np.zeros((n_items, 0), dtype=np.float32)
            if item_features is None or self.content_.kinds
            else item_features
        )
        binary = (matrix > 0).astype(np.float32).tocsr()
        pairs = binary.tocoo()
        pair_users, pair_items = pairs.row.astype(np.int64), pairs.col.astype(np.int32)
        counts = np.bincount(pair_items, minlength=n_items)
        log_q = np.log(np.maximum(counts, 1) / len(pair_items)).astype(np.float32)
        if not self.params["logq_correction"]:
            log_q[:] = 0.0
        rng = np.random.default_rng(self.params["seed"] + 1)
        bpr = self.params["loss"] == "bpr"

        def batch(rows: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
            users, items = pair_users[rows], pair_items[rows]
            history = binary[users].toarray()
            history[np.arange(len(rows)), items] = 0.0  # predict the item from the rest
            keep = self._keep(rng, len(rows))
            inputs = {"history": history, "item": items, **self._item_inputs(items, keep)}
            if self.user_content_.kinds:
                inputs.update(user_arrays(self.user_content_, users))
            if bpr:
                negative = rng.integers(n_items, size=len(rows)).astype(np.int32)
                negative_keep = self._keep(rng, len(rows))
                for key, value in self._item_inputs(negative, negative_keep).items():
                    inputs["negative_" + key] = value
                return inputs, np.zeros(len(rows), dtype=np.float32)
            inputs["log_q"] = log_q[items]
            return inputs, np.arange(len(rows), dtype=np.int32)

        data = shuffled_batches(
            len(pair_items), self.params["batch_size"], self.params["seed"], batch
        )
        self._train(data, validation)
        self._keep_item_vectors()
        self._index_items()

    def _kept_content(self, content: ItemContent | None, n_items: int) -> ItemContent:
        """The content the item tower reads: the rows of the matrix's items (in memory,
        images included), without the skipped contents; empty when it reads none."""
        empty = ItemContent({}, {}, {})
        if content is None or not content.kinds or not self.params.get("use_content", True):
            return empty
        chosen = select_content(content, self.params["skip_content"], self.name)
        rows = chosen.rows(slice(0, n_items))
        return ItemContent(
            rows.kinds,
            {n: np.array(v) for n, v in rows.values.items()},
            {n: np.asarray(m, dtype=bool).copy() for n, m in rows.masks.items()},
            rows.sizes,
        )

    def _item_inputs(
        self, items: np.ndarray, keep: np.ndarray, content: ItemContent | None = None
    ) -> dict[str, Any]:
        """The item tower's inputs: the ids and whether their embedding is kept (a tower
        that reads ids), and the content rows (``content``, default the kept rows of
        ``items``) when it reads content."""
        out: dict[str, Any] = {}
        if self.uses_ids:
            out = {"item": np.asarray(items, dtype=np.int32), "keep": keep}
        if self.content_.kinds:
            rows = self.content_.rows(items) if content is None else content
            out.update(content_arrays(rows, self.content_.sizes))
        return out

    def _keep(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """1 where an item's id embedding is used, 0 where it is dropped (``id_dropout``)."""
        if self.params.get("id_dropout", 0.0) <= 0:
            return np.ones(n, dtype=np.float32)
        return np.asarray(rng.random(n) >= self.params["id_dropout"], dtype=np.float32)

    # -- scoring -----------------------------------------------------------------
    def item_vectors(self) -> np.ndarray:
        """Unit item vectors (n_items x dim); items without training interactions are
        represented by their content (or content features) only. With typed content they
        are computed once after fitting or loading (the item tower over every item,
        ``score_batch_size`` items at a time) and kept."""
        cached = getattr(self, "_item_vectors", None)
        return cached if cached is not None else self._tower_vectors()

    def _tower_vectors(self) -> np.ndarray:
        n_items = self.train_matrix_.shape[1]
        warm = np.asarray((self.train_matrix_ > 0).sum(axis=0)).ravel() > 0
        tower = self.network_.get_layer("item_tower")
        if not self.content_.kinds:
            items = {"item": np.arange(n_items, dtype=np.int32), "keep": warm.astype(np.float32)}
            return self._predict(tower, items)
        step = self.params["score_batch_size"]
        parts = []
        for start in range(0, n_items, step):
            index = np.arange(start, min(start + step, n_items))
            keep = warm[index].astype(np.float32)
            parts.append(self._predict(tower, self._item_inputs(index, keep)))
        return np.vstack(parts)

    def _keep_item_vectors(self) -> None:
        """With typed content, the item vectors computed now and kept for scoring."""
        self._item_vectors = self._tower_vectors() if self.content_.kinds else None

    def _user_vectors(self, users: np.ndarray, binary: sp.csr_matrix) -> np.ndarray:
        """The user tower's output for ``users`` (a block) and their binary history rows."""
        tower = self.network_.get_layer("user_tower")
        if not self.user_content_.kinds:
            return self._predict(tower, binary.toarray())
        inputs = {"history": binary.toarray(), **user_arrays(self.user_content_, users)}
        return self._predict(tower, inputs)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        binary = (history > 0).astype(np.float32)
        items = self.item_vectors()
        step = self.params["score_batch_size"]
        out = np.empty((len(users), items.shape[0]), dtype=np.float32)
        for start in range(0, len(users), step):
            block = slice(start, start + step)
            out[block] = self._user_vectors(users[block], binary[block]) @ items.T
        return out

    def index_vectors(self) -> np.ndarray:
        return self.item_vectors()

    def query_vectors(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        """The user tower's output for each history row, ``score_batch_size`` rows at once."""
        binary = (history > 0).astype(np.float32)
        step = self.params["score_batch_size"]
        parts = [
            self._user_vectors(users[start : start + step], binary[start : start + step])
            for start in range(0, len(users), step)
        ]
        dim = self.params["embedding_dim"]
        return np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)

    # -- content alone -------------------------------------------------------------
    def content_vectors(self, content: ItemContent) -> np.ndarray:
        """The item tower's unit vectors for the items ``content`` describes, from their
        content alone (the id part zeroed), ``score_batch_size`` items at a time."""
        self._check_fitted()
        if not self.content_.kinds:
            raise ValueError(
                f"{self.name}: fitted without typed content, so it cannot place items from "
                "their content; fit it with content=ItemContent (and use_content true)"
            )
        given = check_layout(self.content_, content, self.name)
        step = self.params["score_batch_size"]
        tower = self.network_.get_layer("item_tower")
        parts = []
        for start in range(0, len(given), step):
            rows = given.rows(slice(start, start + step))
            n = len(rows)
            inputs = self._item_inputs(np.zeros(n, np.int32), np.zeros(n, np.float32), rows)
            parts.append(self._predict(tower, inputs))
        dim = self.params["embedding_dim"]
        return np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)

    def reads_content(self) -> bool:
        self._check_fitted()
        return bool(self.content_.kinds)

    def score_content(
        self, users: np.ndarray, history: sp.csr_matrix | None, content: ItemContent
    ) -> np.ndarray:
        """Users x len(content) scores of the items ``content`` describes, from their content
        alone: the user vectors ``score`` uses times :meth:`content_vectors`, on the same
        scale as ``score`` (the cosine of the two towers' unit vectors), so new items
        rank beside the catalogue's."""
        return self.score_vectors(users, history, self.content_vectors(content))

    def score_vectors(
        self, users: np.ndarray, history: sp.csr_matrix | None, vectors: np.ndarray
    ) -> np.ndarray:
        """Users x items scores of items whose :meth:`content_vectors` are ``vectors``."""
        users, rows, _ = self._request_rows(users, history, None)
        scores: np.ndarray = self.query_vectors(users, rows) @ np.asarray(vectors).T
        return scores

    # -- persistence -------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        np.save(directory / "item_features.npy", self.item_features_)
        save_content(self.content_, directory / "content")
        save_content(self.user_content_, directory / "user_content")
        super()._save_state(directory)
        self._save_index(directory)

    def _load_state(self, directory: Path) -> None:
        self.item_features_ = np.load(directory / "item_features.npy")
        self.content_ = load_content(directory / "content")
        self.user_content_ = load_content(directory / "user_content")
        super()._load_state(directory)
        self._keep_item_vectors()
        self._load_index(directory)
