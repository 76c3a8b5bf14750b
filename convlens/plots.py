"""Matplotlib charts (training curves, confusion matrix). Only the Agg backend, never a window."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves_figure(history_csv: str, metrics_json: str, out_png: str) -> None:
    """Loss and accuracy per epoch, train and validation, with the kept (best) epoch marked."""
    plt = _pyplot()
    with open(history_csv) as fh:
        rows = list(csv.DictReader(fh))
    metrics = json.loads(Path(metrics_json).read_text())
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=120)
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train")
        ax.plot(epochs, [float(r["val_" + key]) for r in rows], label="validation")
        ax.axvline(metrics["best_epoch"], color="grey", linestyle=":", label="kept epoch")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def confusion_matrix_figure(metrics_json: str, out_png: str) -> None:
    """The test-set confusion matrix as a heat table with counts."""
    plt = _pyplot()
    metrics = json.loads(Path(metrics_json).read_text())
    cm = np.array(metrics["confusion_matrix"])
    names = metrics["class_names"]
    size = max(3.0, 0.45 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size), dpi=120)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")
    ax.set_title(f"test accuracy {metrics['test_accuracy']:.1%}")
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
