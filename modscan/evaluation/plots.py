"""Report figures as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modscan.evaluation.metrics import roc_curve


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Accuracy and loss per epoch, train and validation. None when there is no history."""
    if not history:
        return None
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc_ax.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train (augmented)")
    acc_ax.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="validation")
    acc_ax.set(title="Accuracy (threshold 0.5)", xlabel="epoch", ylabel="accuracy")
    loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (augmented)")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    loss_ax.set(title="Binary cross-entropy", xlabel="epoch", ylabel="loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc(curves: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]], path: Path) -> Path:
    """ROC curves, one per named (labels, scores) pair, with their AUC in the legend."""
    from modscan.evaluation.metrics import roc_auc

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, scores):.4f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(
        title="ROC (positive = AI-generated)",
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        xlim=(0, 1),
        ylim=(0, 1.005),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(matrix: list[list[int]], threshold: float, path: Path) -> Path:
    plt = _pyplot()
    values = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(values, cmap="Blues")
    names = ["real", "AI"]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion at threshold {threshold:.3f}")
    peak = values.max() if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            color="white" if v > peak / 2 else "black",
            fontsize=12,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def score_histograms(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    band: list[float] | None,
    path: Path,
) -> Path:
    plt = _pyplot()
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 51)
    ax.hist(s[~y], bins=bins, alpha=0.6, label=f"real (n={int((~y).sum())})")
    ax.hist(s[y], bins=bins, alpha=0.6, label=f"AI-generated (n={int(y.sum())})")
    ax.axvline(threshold, color="k", lw=1, label=f"threshold {threshold:.3f}")
    if band:
        ax.axvspan(band[0], band[1], color="grey", alpha=0.15, label="uncertain band")
    ax.set(
        yscale="log",
        xlabel="ai_score = P(AI)",
        ylabel="images",
        title="Score distribution per true class",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
