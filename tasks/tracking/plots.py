"""Plots logged to MLflow: training curves, models side by side, popularity long tail.

matplotlib with the Agg backend: no display needed. Each function returns a Figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: dict[str, list[float]], title: str) -> Any:
    """One panel per curve of a Keras-style history (loss, validation metrics)."""
    plt = _pyplot()
    names = [n for n, values in history.items() if values]
    fig, axes = plt.subplots(
        1, max(len(names), 1), figsize=(5 * max(len(names), 1), 3.5), squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        values = history[name]
        ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def metrics_bar(results: list[dict], metric_names: list[str], title: str) -> Any:
    """Grouped bars: one group per metric, one bar per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(metric_names)), 4))
    width = 0.8 / max(len(results), 1)
    x = np.arange(len(metric_names))
    for i, result in enumerate(results):
        values = [result["metrics"].get(m, np.nan) for m in metric_names]
        bars = ax.bar(x + i * width, values, width, label=result["model"])
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x + width * (len(results) - 1) / 2, metric_names)
    ax.set_ylabel("value on the hold-out")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def long_tail(catalog_counts: np.ndarray, recommended_counts: np.ndarray, title: str) -> Any:
    """Cumulative share of interactions vs of recommendations over items ranked by popularity."""
    plt = _pyplot()
    order = np.argsort(-catalog_counts, kind="stable")
    fig, ax = plt.subplots(figsize=(6, 4))
    for counts, label in (
        (catalog_counts, "interactions"),
        (recommended_counts, "recommendations"),
    ):
        ordered = np.asarray(counts, dtype=float)[order]
        total = ordered.sum()
        if total > 0:
            ax.plot(
                np.arange(1, len(ordered) + 1) / len(ordered),
                np.cumsum(ordered) / total,
                label=label,
            )
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="uniform")
    ax.set_xlabel("share of catalogue (items by popularity in the data)")
    ax.set_ylabel("cumulative share")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
