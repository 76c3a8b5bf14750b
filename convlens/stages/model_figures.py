"""Stage of rule model_figures: training curves and confusion matrix."""

from __future__ import annotations

from convlens.plots import confusion_matrix_figure, training_curves_figure


def model_figures(history_csv: str, metrics_json: str, out: dict) -> None:
    training_curves_figure(history_csv, metrics_json, out["curves"])
    confusion_matrix_figure(metrics_json, out["confusion"])
