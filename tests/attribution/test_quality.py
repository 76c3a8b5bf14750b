"""Checks of the methods (attribution.quality): cascading randomization and deletion/insertion curves."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.core.head import TARGET_PREDICTED  # noqa: E402
from convlens.stats import bootstrap_mean_ci  # noqa: E402
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
    res = attribution.cascading_randomization(
        model, x, np.full(2, TARGET_PREDICTED), ["saliency", EdgeDetector()], seed=1
    )
    assert res["layers"] == ["head", "c2", "c1"]
    assert res["spearman"]["saliency"].shape == (3, 2)
    assert np.allclose(res["spearman"]["edges"], 1.0) and np.allclose(res["ssim"]["edges"], 1.0)
    assert res["insensitive"] == {"saliency": False, "edges": True}
    assert res["spearman"]["saliency"][-1].mean() < 0.5
    assert res["ssim"]["saliency"][-1].mean() < 0.9
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=False))  # restored


def test_deletion_is_faster_in_the_order_of_the_true_saliency():
    """p = sigmoid(w . x + b) with w > 0: deleting (blacking out) the pixels of largest weight
    first lowers p fastest, inserting them first raises it fastest; the curves run between p(x)
    and p(black) = sigmoid(b)."""
    w = (np.exp(rng(18).normal(0, 1.0, size=(256, 1))) / 20).astype("float32")
    x = images((2, 16, 16, 1), seed=19)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid", name="out")]
    )
    b = -0.5 * float((x.reshape(2, -1) @ w).mean())  # p(x) near 0.99, p(black) near 0.01
    model.get_layer("out").set_weights([w, np.array([b], "float32")])
    maps = Explainer(model, ["saliency"]).explain(x, np.array([1, 1]))["saliency"].maps
    assert np.allclose(maps, w.reshape(1, 16, 16), atol=1e-6)  # the true saliency
    res = attribution.deletion_insertion(model, x, np.array([1, 1]), maps, steps=8, insertion_baseline="black")

    def p(v):
        return 1 / (1 + np.exp(-(v.reshape(len(v), -1) @ w[:, 0] + b)))

    assert np.allclose(res["deletion"][:, 0], p(x), atol=1e-5)
    assert np.allclose(res["deletion"][:, -1], 1 / (1 + np.exp(-b)), atol=1e-5)
    assert np.allclose(res["insertion"][:, [0, -1]], np.stack([1 / (1 + np.exp(-np.full(2, b))), p(x)], 1), atol=1e-5)
    order = np.argsort(-w[:, 0], kind="stable")[:128]  # step 4 of 8: half the pixels gone
    half = x.reshape(2, -1).copy()
    half[:, order] = 0
    assert np.allclose(res["deletion"][:, 4], p(half), atol=1e-5)
    assert np.all(res["deletion_auc"] < res["random"]["deletion_auc"])
    assert np.all(res["insertion_auc"] > res["random"]["insertion_auc"])


def conv_gap_model(seed=16):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(y))


class CollapsesOnce(attribution.Method):
    """A fake method: image edges while the head has its original weights; once it is randomized,
    image 0's map becomes constant (all zero) and image 1's stays the same."""

    name = "collapses"

    def __init__(self, head_kernel):
        self.head_kernel = head_kernel

    def run(self, context):
        maps = EdgeDetector().run(context).maps
        if not np.array_equal(context.explainer.model.get_layer("head").get_weights()[0], self.head_kernel):
            maps = maps.copy()
            maps[0] = 0.0
        return attribution.MethodResult(maps, maps)


class FirstLayerEnergy(attribution.Method):
    """A fake method that depends on the first conv layer only: the summed |c1 activations|. Its
    maps cannot change until c1, the last layer of the cascade, is randomized."""

    name = "first_layer"

    def run(self, context):
        model = context.explainer.model
        maps = np.abs(np.asarray(keras.Model(model.input, model.get_layer("c1").output)(context.x))).sum(-1)
        return attribution.MethodResult(maps.astype("float32"), maps.astype("float32"))


def test_a_map_that_becomes_constant_counts_as_changed_not_dropped():
    model = conv_gap_model()
    x = images((2, 12, 12, 3), seed=17)
    res = attribution.cascading_randomization(
        model, x, np.full(2, TARGET_PREDICTED), [CollapsesOnce(model.get_layer("head").get_weights()[0])], seed=1
    )
    n = "collapses"
    assert res["constant"][n][:, 0].all() and not res["constant"][n][:, 1].any()
    assert res["n_constant"][n].tolist() == [1, 1, 1] and res["n_blank"][n] == 0
    assert np.array_equal(res["spearman"][n][:, 0], np.zeros(3)) and np.array_equal(res["ssim"][n][:, 0], np.zeros(3))
    assert np.allclose(res["spearman"][n][:, 1], 1.0)
    # the mean counts the constant map as 0: (0 + 1) / 2, not 1 (which dropping it would give, and flag)
    assert np.allclose(res["mean_spearman"][n], 0.5) and np.allclose(res["mean_ssim"][n], 0.5)
    assert res["insensitive"][n] is False


def test_constant_means_no_range_left_relative_to_the_original():
    original = images((8, 8), seed=3)  # range about 1
    assert attribution.is_constant(np.zeros((8, 8)), original)
    assert attribution.is_constant(np.full((8, 8), 0.3) + 1e-9 * images((8, 8), seed=4), original)  # float dust
    assert not attribution.is_constant(1e-3 * images((8, 8), seed=4), original)  # small but structured
    assert not attribution.is_constant(1e-3 * original, 1e-3 * original)  # relative: scale does not matter


def test_every_step_is_judged_a_method_that_survives_the_top_layers_is_flagged():
    """The first-layer map is unchanged (Spearman 1) after the head and after c2 are randomized and
    changes only with c1, the last step: judged on the last step alone it would pass."""
    model = conv_gap_model()
    x = images((3, 12, 12, 3), seed=17)
    res = attribution.cascading_randomization(
        model, x, np.full(3, TARGET_PREDICTED), [FirstLayerEnergy(), "saliency"], seed=1
    )
    assert res["layers"] == ["head", "c2", "c1"]
    assert np.allclose(res["spearman"]["first_layer"][:2], 1.0)
    assert res["mean_spearman"]["first_layer"][2] < 0.9  # the last step alone would pass it
    assert res["similar"]["first_layer"].tolist() == [True, True, False]
    assert res["insensitive"]["first_layer"] is True
    assert not res["similar"]["saliency"].any() and res["insensitive"]["saliency"] is False
    # the threshold is the rule: above the top step's similarity, nothing is flagged
    again = attribution.cascading_randomization(
        model, x, np.full(3, TARGET_PREDICTED), [FirstLayerEnergy()], seed=1, threshold=1.0
    )
    assert again["insensitive"]["first_layer"] is False


def linear_sigmoid(n_images=8):
    w = (np.exp(rng(18).normal(0, 1.0, size=(256, 1))) / 20).astype("float32")
    x = images((n_images, 16, 16, 1), seed=19)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid", name="out")]
    )
    b = -0.5 * float((x.reshape(n_images, -1) @ w).mean())
    model.get_layer("out").set_weights([w, np.array([b], "float32")])
    return model, x, w


def test_the_true_importance_beats_a_random_order_and_its_reverse_loses():
    """p = sigmoid(w . x + b), w > 0: the map w ranks pixels by their true importance, so it deletes
    and inserts faster than a random order on every image; -w takes the least important first."""
    model, x, w = linear_sigmoid()
    truth = np.broadcast_to(w.reshape(1, 16, 16), x.shape[:3])
    targets = np.ones(len(x), int)
    good = attribution.deletion_insertion(
        model, x, targets, truth, steps=8, insertion_baseline="black", random_orders=3
    )
    bad = attribution.deletion_insertion(
        model, x, targets, -truth, steps=8, insertion_baseline="black", random_orders=3
    )
    assert np.array_equal(good["random"]["deletion_auc"], bad["random"]["deletion_auc"])  # same seeded orders
    better, worse = attribution.against_random(good, n_boot=2000), attribution.against_random(bad, n_boot=2000)
    for kind in ("deletion", "insertion"):
        assert better[kind]["beats_random"] and not better[kind]["worse_than_random"]
        assert worse[kind]["worse_than_random"] and not worse[kind]["beats_random"]
    assert better["deletion"]["high"] < 0 < better["insertion"]["low"]
    assert worse["deletion"]["low"] > 0 > worse["insertion"]["high"]
    # the numbers: the mean paired difference and its interval, as stats.bootstrap_mean_ci gives them
    diff = good["insertion_auc"] - good["random"]["insertion_auc"]
    assert better["insertion"]["diff"] == pytest.approx(diff.mean())
    assert (better["insertion"]["low"], better["insertion"]["high"]) == bootstrap_mean_ci(diff, 2000, 0, 0.95)


def test_several_random_orders_average_the_curves_of_independent_orders():
    """The random baseline with 3 orders is the mean of 3 seeded permutations' deletion curves,
    computed here by hand on p = sigmoid(w . x + b) (deletion to black: the first pixels of each
    permutation set to 0)."""
    model, x, w = linear_sigmoid(2)
    b = float(model.get_layer("out").get_weights()[1][0])
    targets = np.ones(2, int)
    maps = np.broadcast_to(w.reshape(1, 16, 16), x.shape[:3])
    res = attribution.deletion_insertion(model, x, targets, maps, steps=4, random_orders=3, seed=5)
    perm = np.random.default_rng(5)
    orders = [[perm.permutation(256) for _ in range(2)] for _ in range(3)]  # per order, one per image
    counts = np.round(np.linspace(0, 1, 5) * 256).astype(int)
    expected = np.zeros((2, 5))
    for order in orders:
        for i in range(2):
            for s, k in enumerate(counts):
                v = x[i].ravel().copy()
                v[order[i][:k]] = 0.0
                expected[i, s] += 1 / (1 + np.exp(-(v @ w[:, 0] + b))) / 3
    assert np.allclose(res["random"]["deletion"], expected, atol=1e-5)
    assert np.allclose(res["random"]["deletion_auc"], np.trapezoid(expected, np.linspace(0, 1, 5), axis=1), atol=1e-5)
    # another method's maps given these random curves (the stage computes them once): the same answer
    # as computing them again, and its own curves
    other = np.flip(maps, axis=2)
    again = attribution.deletion_insertion(model, x, targets, other, steps=4, random_orders=3, seed=5)
    given = attribution.deletion_insertion(model, x, targets, other, steps=4, random=res["random"])
    for key in ("deletion", "insertion", "deletion_auc", "insertion_auc"):
        assert np.array_equal(given["random"][key], again["random"][key]) and np.array_equal(given[key], again[key])
    assert not np.allclose(given["deletion"], res["deletion"])


def test_a_map_that_ties_with_random_does_not_beat_it():
    """Areas equal to the random order's up to symmetric noise: the interval straddles 0, so the
    method is flagged (does not beat random) but not called worse."""
    noise = np.array([-0.02, 0.02, -0.01, 0.01, -0.03, 0.03])
    result = {
        "deletion_auc": 0.5 + noise,
        "insertion_auc": 0.5 - noise,
        "random": {"deletion_auc": np.full(6, 0.5), "insertion_auc": np.full(6, 0.5)},
    }
    out = attribution.against_random(result, n_boot=4000, seed=1)
    for kind in ("deletion", "insertion"):
        assert out[kind]["diff"] == pytest.approx(0.0, abs=1e-12)
        assert out[kind]["low"] < 0 < out[kind]["high"]
        assert not out[kind]["beats_random"] and not out[kind]["worse_than_random"]


class BlankFirst(attribution.Method):
    """A fake method whose map of image 0 is all zero from the start; image 1 gets its edges."""

    name = "blank_first"

    def run(self, context):
        maps = EdgeDetector().run(context).maps.copy()
        maps[0] = 0.0
        return attribution.MethodResult(maps, maps)


def test_an_image_whose_original_map_is_constant_is_counted_and_left_out():
    model = conv_gap_model()
    x = images((2, 12, 12, 3), seed=17)
    res = attribution.cascading_randomization(model, x, np.full(2, TARGET_PREDICTED), [BlankFirst()], seed=1)
    n = "blank_first"
    assert res["n_blank"][n] == 1 and res["n_constant"][n].tolist() == [0, 0, 0]
    assert np.isnan(res["spearman"][n][:, 0]).all() and np.allclose(res["spearman"][n][:, 1], 1.0)
    assert np.allclose(res["mean_spearman"][n], 1.0) and res["insensitive"][n] is True


def test_each_step_equals_a_fresh_explainer_on_the_randomized_model():
    """The steps share one Explainer (its compiled functions read the model's variables, assigned in
    place): every step's similarities equal those of maps from a new Explainer on the randomized
    model, for a method of every ReLU rule (guided backprop runs the ReLU layers as linear copies) and
    with the logits from a linear copy of the softmax layer."""
    from scipy.stats import spearmanr

    from convlens.attribution.quality import _randomize
    from convlens.core.layers import find_layer

    keras.utils.set_random_seed(16)
    inputs = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(y))  # logits: a copy
    x = images((2, 12, 12, 3), seed=17)
    methods = ["saliency", "guided_backprop", "gradcam"]
    res = attribution.cascading_randomization(model, x, np.full(2, TARGET_PREDICTED), methods, seed=1)
    targets = Explainer(model, []).resolve_targets(x, np.full(2, TARGET_PREDICTED))[0]
    original = {n: np.abs(r.maps) for n, r in Explainer(model, methods).explain(x, targets).items()}
    rng_ = np.random.default_rng(1)  # the same draws, in the same order, as the steps
    saved = model.get_weights()
    for step, path in enumerate(res["layers"]):
        _randomize(find_layer(model, path), rng_)
        fresh = {n: np.abs(r.maps) for n, r in Explainer(model, methods).explain(x, targets).items()}
        for n in methods:
            for b in range(len(x)):
                if res["constant"][n][step, b]:
                    continue
                expected = spearmanr(original[n][b].ravel(), fresh[n][b].ravel())[0]
                assert res["spearman"][n][step, b] == pytest.approx(expected, abs=1e-6), (n, step, b)
    model.set_weights(saved)
