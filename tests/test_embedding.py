"""Embeddings of the penultimate features: PCA, t-SNE and the figure marking misclassified points."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import embedding  # noqa: E402
from tests.helpers import importable  # noqa: E402

HAVE_SKLEARN = importable("sklearn.manifold")


def test_pca_finds_the_dominant_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=6)
    direction /= np.linalg.norm(direction)
    t = rng.normal(size=200) * 5.0
    x = t[:, None] * direction + 0.05 * rng.normal(size=(200, 6)) + 3.0
    coords, comps = embedding.pca(x, 2)
    assert abs(comps[0] @ direction) > 0.999
    sign = np.sign(comps[0] @ direction)
    assert np.allclose(coords[:, 0], sign * (t - t.mean()), atol=0.2)
    assert np.allclose(comps @ comps.T, np.eye(2), atol=1e-10)
    got, method = embedding.project_2d(x, method="pca")
    assert method == "pca" and np.allclose(got, coords)
    assert embedding.project_2d(x[:40], seed=0)[1] == ("tsne" if HAVE_SKLEARN else "pca")


@pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")
def test_tsne_separates_two_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 8)), rng.normal(size=(20, 8)) + 6.0])
    coords, method = embedding.project_2d(x, seed=0, method="tsne")
    assert method == "tsne" and coords.shape == (40, 2)
    gap = np.linalg.norm(coords[:20].mean(0) - coords[20:].mean(0))
    assert gap > 3 * max(coords[:20].std(0).max(), coords[20:].std(0).max())


def test_penultimate_features_and_predictions(cnn):
    images = np.random.default_rng(2).random((5, 32, 32, 3)).astype("float32")
    feats, pred = embedding.penultimate_features(cnn, images, "unit", batch_size=2)
    assert embedding.last_dense_layer(cnn) == "pred"
    assert np.allclose(feats, keras.Model(cnn.inputs[0], cnn.get_layer("gap").output)(images), atol=1e-6)
    assert pred.tolist() == cnn.predict(images, verbose=0).argmax(-1).tolist()


def test_embedding_figure_marks_each_misclassified_point(tmp_path):
    rng = np.random.default_rng(1)
    coords = rng.normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    predicted = labels.copy()
    wrong = [3, 14, 15, 27]
    predicted[wrong] = (labels[wrong] + 1) % 3
    out = tmp_path / "embedding.png"
    embedding.write_embedding_png(coords, labels, predicted, str(out), ["a", "b", "c"], "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = embedding.embedding_figure(coords, labels, predicted, ["a", "b", "c"])
    marked = [c for c in fig.axes[0].collections if c.get_gid() == embedding.MISCLASSIFIED_GID]
    assert len(marked) == 1 and np.allclose(marked[0].get_offsets(), coords[wrong])
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 30 + len(wrong)
