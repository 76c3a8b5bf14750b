"""A 2-D map of how a model sees a test set: penultimate features, projected, coloured by class.

- penultimate_features: the input of the model's last Dense layer for every image (batched),
  with the model's predicted class;
- project_2d: t-SNE (scikit-learn, seeded, perplexity min(30, (n - 1) / 3)) when scikit-learn is
  importable, else PCA (numpy SVD);
- embedding_figure / write_embedding_png: a scatter coloured by true class, misclassified points
  marked with a black 'x' (matplotlib, Agg canvas, no pyplot state), the legend beside the points.
"""

from __future__ import annotations

import numpy as np

from convlens.core.graph import build_probe
from convlens.core.head import preprocess
from convlens.core.layers import iter_layers
from convlens.errors import InputError
from convlens.plots import legend_beside, save_figure

MISCLASSIFIED_GID = "misclassified"  # the gid of the scatter that marks misclassified points
LEGEND_CLASSES = 20  # more classes than this are coloured but not named in the legend


def last_dense_layer(model) -> str:
    """Path of the last Dense layer (nested models included): its input is the penultimate feature."""
    import keras

    dense = [p for p, layer in iter_layers(model) if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise InputError(f"model {model.name!r} has no Dense layer; the embedding uses the input of the last one")
    return dense[-1]


def penultimate_features(
    model, images: np.ndarray, preprocess_mode: str, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) = input of the last Dense layer, predicted class (N,)) for images in [0, 1]."""
    import tensorflow as tf

    probe = build_probe(model, [], None, inputs_of=(last_dense_layer(model),))

    @tf.function(reduce_retracing=True)
    def run(x):
        outs = probe(preprocess(x, preprocess_mode), training=False)
        return tf.reshape(outs[-1], (tf.shape(x)[0], -1)), outs[-2]  # (features, final output)

    feats, preds = [], []
    images = np.asarray(images, dtype="float32")
    for i in range(0, len(images), batch_size):
        f, out = run(images[i : i + batch_size])
        feats.append(np.asarray(f))
        out = np.asarray(out)
        preds.append(out.argmax(-1) if out.shape[-1] > 1 else (out[:, 0] > 0.5).astype(int))
    return np.concatenate(feats), np.concatenate(preds)


def pca(features: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project centred features on their top-k principal directions.

    Returns (coordinates (N, k), components (k, D) with unit rows). Each component's sign is fixed
    so its largest-magnitude entry is positive, making the result deterministic.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:k]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    return x @ comps.T, comps


def project_2d(features: np.ndarray, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """(coordinates (N, 2), method used): ``tsne``, ``pca``, or ``auto`` (t-SNE if scikit-learn is there)."""
    if method not in ("auto", "tsne", "pca"):
        raise ValueError(f"unknown projection {method!r}; known: auto, tsne, pca")
    if method != "pca":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            if method == "tsne":
                raise InputError("t-SNE needs scikit-learn, which is not installed; use method='pca'") from None
        else:
            n = len(features)
            tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3.0), init="pca", random_state=seed)
            return tsne.fit_transform(np.asarray(features, dtype=np.float64)), "tsne"
    return pca(features, 2)[0], "pca"


def embedding_figure(
    coords: np.ndarray, labels: np.ndarray, predicted: np.ndarray, class_names: list[str] | None = None, title: str = ""
):
    """A matplotlib Figure (Agg canvas): points coloured by true class, misclassified ones under a
    black 'x' (that scatter has gid MISCLASSIFIED_GID)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    coords, labels, predicted = np.asarray(coords), np.asarray(labels), np.asarray(predicted)
    n_classes = int(max(labels.max(), predicted.max())) + 1 if len(labels) else 0
    names = class_names or [str(i) for i in range(n_classes)]
    fig = Figure(figsize=(4.2, 3.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.ticklabel_format(useOffset=False)  # the project's style (convlens.plots.STYLE): no offset notation
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20" if n_classes <= 20 else "turbo"]
    for cls in range(n_classes):
        chosen = labels == cls
        if chosen.any():
            colour = cmap(cls) if n_classes <= 20 else cmap(cls / max(1, n_classes - 1))
            ax.scatter(
                coords[chosen, 0],
                coords[chosen, 1],
                s=12,
                color=colour,
                label=names[cls] if n_classes <= LEGEND_CLASSES else None,
            )
    wrong = labels != predicted
    ax.scatter(
        coords[wrong, 0],
        coords[wrong, 1],
        s=28,
        marker="x",
        color="black",
        linewidths=1.0,
        label=f"misclassified ({int(wrong.sum())})",
        gid=MISCLASSIFIED_GID,
    )
    legend_beside(
        ax,
        fontsize=6.5,
        markerscale=1.2,
        title=None if n_classes <= LEGEND_CLASSES else f"{n_classes} classes (colours not named)",
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_embedding_png(
    coords: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    out_png: str,
    class_names: list[str] | None = None,
    title: str = "",
) -> None:
    """embedding_figure written to ``out_png`` and, beside it, as SVG."""
    save_figure(embedding_figure(coords, labels, predicted, class_names, title), out_png)
