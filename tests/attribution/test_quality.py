"""Checks of the methods (attribution.quality): cascading randomization and deletion/insertion curves."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.core.head import TARGET_PREDICTED  # noqa: E402
from tests.helpers import images, rng  # noqa: E402


class EdgeDetector(attribution.Method):
    """A fake method that ignores the model: the image's gradient magnitude."""

    name = "edges"

    def run(self, context):
        grey = context.x.mean(axis=-1)
        maps = np.hypot(*np.gradient(grey, axis=(1, 2))).astype("float32")
        return attribution.MethodResult(maps, maps)


def test_cascading_randomization_flags_a_model_independent_method():
    keras.utils.set_random_seed(16)
    inputs = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(y))
    before = [w.copy() for w in model.get_weights()]
    x = images((2, 12, 12, 3), seed=17)
    res = attribution.cascading_randomization(model, x, np.full(2, TARGET_PREDICTED),
                                              ["saliency", EdgeDetector()], seed=1)
    assert res["layers"] == ["head", "c2", "c1"]
    assert res["spearman"]["saliency"].shape == (3, 2)
    assert np.allclose(res["spearman"]["edges"], 1.0) and np.allclose(res["ssim"]["edges"], 1.0)
    assert res["insensitive"] == {"saliency": False, "edges": True}
    assert res["spearman"]["saliency"][-1].mean() < 0.5
    assert res["ssim"]["saliency"][-1].mean() < 0.9
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # restored


def test_deletion_is_faster_in_the_order_of_the_true_saliency():
    """p = sigmoid(w . x + b) with w > 0: deleting (blacking out) the pixels of largest weight
    first lowers p fastest, inserting them first raises it fastest; the curves run between p(x)
    and p(black) = sigmoid(b)."""
    w = (np.exp(rng(18).normal(0, 1.0, size=(256, 1))) / 20).astype("float32")
    x = images((2, 16, 16, 1), seed=19)
    model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid", name="out")])
    b = -0.5 * float((x.reshape(2, -1) @ w).mean())  # p(x) near 0.99, p(black) near 0.01
    model.get_layer("out").set_weights([w, np.array([b], "float32")])
    maps = Explainer(model, ["saliency"]).explain(x, np.array([1, 1]))["saliency"].maps
    assert np.allclose(maps, w.reshape(1, 16, 16), atol=1e-6)  # the true saliency
    res = attribution.deletion_insertion(model, x, np.array([1, 1]), maps, steps=8, insertion_baseline="black")

    def p(v):
        return 1 / (1 + np.exp(-(v.reshape(len(v), -1) @ w[:, 0] + b)))

    assert np.allclose(res["deletion"][:, 0], p(x), atol=1e-5)
    assert np.allclose(res["deletion"][:, -1], 1 / (1 + np.exp(-b)), atol=1e-5)
    assert np.allclose(res["insertion"][:, [0, -1]], np.stack([1 / (1 + np.exp(-np.full(2, b))), p(x)], 1),
                       atol=1e-5)
    order = np.argsort(-w[:, 0], kind="stable")[:128]  # step 4 of 8: half the pixels gone
    half = x.reshape(2, -1).copy()
    half[:, order] = 0
    assert np.allclose(res["deletion"][:, 4], p(half), atol=1e-5)
    assert np.all(res["deletion_auc"] < res["random"]["deletion_auc"])
    assert np.all(res["insertion_auc"] > res["random"]["insertion_auc"])
