"""Snakemake entry for rule model_figures: training curves and confusion matrix."""
from convlens.plots import confusion_matrix_figure, training_curves_figure
from convlens.pipeline import run_stage


def main(sm):
    training_curves_figure(sm.input.history, sm.input.metrics, sm.output.curves)
    confusion_matrix_figure(sm.input.metrics, sm.output.confusion)


sm = snakemake  # noqa: F821 (injected by Snakemake)
run_stage(sm.log[0], main, sm)
