"""The settings ``recpipe evaluate`` tries for each model on the validation split.

The first entry of each grid is the model's default. Grids stay small: each
setting is one fit, and a leaderboard on MovieLens 100K runs on a laptop's cores.
"""

from __future__ import annotations

from typing import Any

from models.mult_dae import PAPER_SETTINGS

GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    # recent popularity: windows of 7, 14, 30 days and all time, half-lives of 7, 30, 90
    # days and none; each setting is one count over the interactions
    "recent_popularity": [
        {"window_days": window, "half_life_days": half_life}
        for half_life in (30.0, 7.0, 90.0, None)
        for window in (None, 7.0, 14.0, 30.0)
    ],
    # the time-decayed settings (half_life_days) beside the plain ones, at each one's
    # usual strength
    "item_knn": [
        {"neighbors": 200, "shrinkage": 10.0},
        {"neighbors": 100, "shrinkage": 0.0},  # RecBole's defaults
        {"neighbors": 400, "shrinkage": 0.0},
        {"neighbors": 100, "shrinkage": 50.0},
        {"neighbors": 200, "shrinkage": 10.0, "half_life_days": 30.0},
        {"neighbors": 200, "shrinkage": 10.0, "half_life_days": 90.0},
    ],
    "ease": [
        {"l2": 300.0},
        {"l2": 100.0},
        {"l2": 800.0},
        {"l2": 300.0, "half_life_days": 30.0},
        {"l2": 300.0, "half_life_days": 90.0},
        {"l2": 100.0, "half_life_days": 30.0},
    ],
    # implicit's ALS and BPR; on MovieLens 100K few factors and strong regularisation win
    "als": [
        {"factors": 32, "regularization": 20.0, "alpha": 2.0, "iterations": 15},
        {"factors": 48, "regularization": 20.0, "alpha": 2.0, "iterations": 15},
        {"factors": 32, "regularization": 10.0, "alpha": 2.0, "iterations": 15},
    ],
    # implicit's BPR draws negatives by popularity: longer or faster training pushes popular
    # items down (valid NDCG@10 0.2146 at 100 iterations of lr 0.005, 0.1278 at 300); adding
    # log popularity back (popularity_correction) lifts every setting (0.2338 and 0.2088)
    "bpr": [
        {"factors": 64, "learning_rate": 0.005, "regularization": 0.001, "iterations": 100},
        {
            "factors": 64,
            "learning_rate": 0.005,
            "regularization": 0.001,
            "iterations": 100,
            "popularity_correction": 1.0,
        },
        {
            "factors": 64,
            "learning_rate": 0.01,
            "regularization": 0.001,
            "iterations": 100,
            "popularity_correction": 2.0,
        },
        {
            "factors": 128,
            "learning_rate": 0.01,
            "regularization": 0.01,
            "iterations": 200,
            "popularity_correction": 1.5,
        },
    ],
    "mult_dae": [
        PAPER_SETTINGS,
        {"hidden_dim": 600, "dropout": 0.5, "l2": 1e-2, "epochs": 300, "patience": 10},
        {"hidden_dim": 1000, "dropout": 0.7, "l2": 1e-3, "epochs": 300, "patience": 10},
        # the paper's setting, the learning rate halved after 10 epochs without progress
        {**PAPER_SETTINGS, "patience": 30, "lr_plateau": 10},
    ],
    "mult_vae": [
        {"total_anneal_steps": 2000, "epochs": 150, "patience": 8},
        # RecBole's MultiVAE: 64-d code, noise std 0.01, 200,000 annealing steps (beta ~ 0)
        {
            "latent_dim": 64,
            "noise_std": 0.01,
            "total_anneal_steps": 200000,
            "epochs": 150,
            "patience": 8,
        },
    ],
    # RecVAE: the paper's code's setting (batch 500, gamma 0.005: valid NDCG@10 0.2545), and
    # on MovieLens 100K's 943 users smaller batches and a stronger KL weight per interaction
    # (batch 100: gamma 0.005 0.2551, 0.01 0.2641, 0.015 0.2677, 0.02 0.2625; dropout 0.7
    # 0.2617; learning rate 1e-3 0.2535)
    "recvae": [
        {"epochs": 150, "patience": 15},
        {"batch_size": 100, "gamma": 0.015, "epochs": 150, "patience": 15},
    ],
    # EASE (or item-kNN) beside recent popularity: the popularity weight is chosen on
    # validation inside the fit; the grid tries the popularity part's recency
    "blend": [
        {},
        {"window_days": 14.0, "half_life_days": 90.0},
        {"personal": "item_knn", "item_knn": {"neighbors": 200, "shrinkage": 10.0}},
    ],
    # a hybrid, not a deep model: the blend weight is chosen on validation inside the fit
    "ease_mult_dae": [{"ease": {"l2": 300.0}, "mult_dae": PAPER_SETTINGS}],
    "gru4rec": [{"cell": "gru", "epochs": 30, "patience": 5}],
    "caser": [{"epochs": 30, "patience": 5}],
    # chosen on leave-last-out validation (docs/benchmarks/models.md, SASRec): windows of 20
    # items ending every 5 (valid NDCG@10 0.1308; every 10: 0.1199; consecutive: 0.1138),
    # tied embeddings
    "sasrec": [
        {"max_len": 20, "stride": 5, "dropout": 0.3, "batch_size": 64, "epochs": 60, "patience": 8},
    ],
    "two_tower": [{"loss": "softmax", "temperature": 0.1, "epochs": 30}],
    # the content models read the catalogue's typed content (they need it): item vectors
    # from content alone, and ids where known with content where not (id dropout)
    "content_tower": [{"loss": "softmax", "temperature": 0.1, "epochs": 30}],
    "hybrid_tower": [
        {"loss": "softmax", "temperature": 0.1, "epochs": 30},
        {"loss": "softmax", "temperature": 0.1, "epochs": 30, "id_dropout": 0.3},
    ],
    # the social models read relations between users (``recpipe bench social`` measures
    # them on Gowalla): their defaults (the friends' share beside EASE), and beside item-kNN
    "social_pop": [{}, {"own": "item_knn"}],
    "social_gcn": [{}],
}
