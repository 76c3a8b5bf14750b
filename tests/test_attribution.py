"""Attribution methods and their checks against known answers (TensorFlow, CPU, tiny models)."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution, backend, models  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.errors import InputError  # noqa: E402


def rng(seed):
    return np.random.default_rng(seed)


def images(shape, seed=0):
    return rng(seed).random(shape).astype("float32")


def linear_model(shape=(4, 4, 2), classes=3, seed=0, activation=None):
    """Flatten -> Dense (logits, or the given activation); returns the model, kernel and bias."""
    n = int(np.prod(shape))
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                              keras.layers.Dense(classes, activation=activation, name="out")])
    w = rng(seed).normal(size=(n, classes)).astype("float32")
    b = rng(seed + 1).normal(size=(classes,)).astype("float32")
    model.get_layer("out").set_weights([w, b])
    return model, w, b


def gap_model(shape=(6, 6, 2), filters=3, classes=2, kernel=3, head=None, bias=True, seed=0):
    """Conv (ReLU, 'same') -> global average pooling -> dense; returns the model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    a = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu", use_bias=bias, name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(a)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation=head, name="head")(pooled))
    for layer in model.layers:  # non-zero biases: the model is not positively homogeneous
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng(seed + 7).normal(0, 0.3, layer.bias.shape).astype("float32"))
    return model


def logits_of(model, x):
    """Model outputs (the tests' models end in a linear layer when logits are needed)."""
    return np.asarray(model(x, training=False))


def test_saliency_and_smoothgrad_of_a_linear_model_are_the_class_weights():
    model, w, _ = linear_model()
    x = images((2, 4, 4, 2))
    out = Explainer(model, ["saliency", "smoothgrad"], params={"smoothgrad": {"samples": 4}}).explain(
        x, np.array([0, 2]))
    for b, c in enumerate((0, 2)):
        weight = w[:, c].reshape(4, 4, 2)
        for name in ("saliency", "smoothgrad"):
            assert np.allclose(out[name].raw[b], weight, atol=1e-6)
            assert np.allclose(out[name].maps[b], np.abs(weight).max(-1), atol=1e-6)
    assert not out["saliency"].signed


def test_without_relu_guided_backprop_and_deconvnet_are_the_gradient():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3, 3, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)])
    x = images((2, 3, 3, 2), seed=1)
    targets = np.array([1, 2])
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        chosen = tf.gather(model(xt), targets, batch_dims=1)
    expected = tape.gradient(chosen, xt).numpy()
    out = Explainer(model, ["saliency", "guided_backprop", "deconvnet"]).explain(x, targets)
    for name in out:
        assert np.allclose(out[name].raw, expected, atol=1e-6), name


@pytest.mark.parametrize("relu_as", ["activation", "relu_layer", "activation_layer"])
def test_guided_backprop_and_deconvnet_of_one_hidden_relu_layer_by_hand(relu_as):
    """h = ReLU(x W1 + b1), logits = h W2 + b2. The signal reaching the ReLU is R = W2[:, c]:
    gradient W1 (R * [z > 0]); guided W1 (R * [z > 0] * [R > 0]); deconvnet W1 ReLU(R)."""
    r = rng(3)
    w1, b1 = r.normal(size=(9, 6)).astype("float32"), r.normal(size=6).astype("float32")
    w2, b2 = r.normal(size=(6, 3)).astype("float32"), r.normal(size=3).astype("float32")
    inputs = keras.Input((3, 3, 1))
    flat = keras.layers.Flatten()(inputs)
    if relu_as == "activation":
        hidden = keras.layers.Dense(6, activation="relu", name="hidden")(flat)
    else:
        z = keras.layers.Dense(6, name="hidden")(flat)
        hidden = keras.layers.ReLU()(z) if relu_as == "relu_layer" else keras.layers.Activation("relu")(z)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    if relu_as == "relu_layer":  # the same network as a Sequential model
        model = keras.Sequential([keras.Input((3, 3, 1))] + model.layers[1:])
    model.get_layer("hidden").set_weights([w1, b1])
    model.get_layer("out").set_weights([w2, b2])
    x = images((4, 3, 3, 1), seed=4)
    targets = np.array([0, 1, 2, 0])
    out = Explainer(model, ["saliency", "guided_backprop", "deconvnet"]).explain(x, targets)
    z = x.reshape(4, 9) @ w1 + b1
    signal = w2[:, targets].T  # (B, 6)
    expected = {"saliency": (signal * (z > 0)) @ w1.T,
                "guided_backprop": (signal * (z > 0) * (signal > 0)) @ w1.T,
                "deconvnet": np.maximum(signal, 0) @ w1.T}
    assert not np.allclose(expected["guided_backprop"], expected["saliency"])  # the case is not trivial
    for name, want in expected.items():
        assert np.allclose(out[name].raw.reshape(4, 9), want, atol=1e-5), name


@pytest.mark.parametrize("baseline", ["black", 0.3, "blur", "noise"])
def test_integrated_gradients_sum_to_the_score_difference(baseline):
    """Completeness: sum of the attributions = f(x) - f(x') for the target's logit; the midpoint
    rule's error on a ReLU network (kinks along the path) is well under 1 % with 512 steps."""
    model = gap_model(shape=(8, 8, 3), filters=4, classes=3)
    head = model.get_layer("head")
    head.set_weights([20 * head.get_weights()[0], head.get_weights()[1]])  # logits of order 1-10
    x = images((2, 8, 8, 3), seed=5)
    targets = np.array([2, 1])
    params = {"steps": 512, "baseline": baseline, "blur_sigma": 2.0, "seed": 3}
    res = Explainer(model, ["integrated_gradients"], params={"integrated_gradients": params}).explain(x, targets)
    reference = attribution.baseline_image(x, baseline, blur_sigma=2.0, seed=3)
    gain = logits_of(model, x)[[0, 1], targets] - logits_of(model, reference)[[0, 1], targets]
    total = res["integrated_gradients"].maps.sum(axis=(1, 2))
    assert res["integrated_gradients"].signed
    assert np.abs(gain).min() > 0.2  # something to attribute
    assert np.allclose(total, gain, rtol=5e-3, atol=1e-4)
    assert np.allclose(res["integrated_gradients"].info["delta"], total - gain, atol=1e-4)


def test_cam_equals_gradcam_on_conv_gap_dense():
    model = gap_model(head="softmax", seed=1)
    x = images((2, 6, 6, 2), seed=2)
    out = Explainer(model, ["cam", "gradcam"]).explain(x, np.array([0, 1]))
    acts = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv").output)(x))
    w = model.get_layer("head").get_weights()[0]
    cam = np.maximum(np.einsum("bhwk,kb->bhw", acts, w[:, [0, 1]]), 0)
    assert np.allclose(out["cam"].raw, cam, atol=1e-5)
    assert np.allclose(out["gradcam"].raw * 36, cam, atol=1e-5)  # gradient through GAP: w / (h * w)
    for b in range(2):
        assert np.allclose(attribution.normalize_map(out["cam"].maps[b])[0],
                           attribution.normalize_map(out["gradcam"].maps[b])[0], atol=1e-5)


def test_gradcam_pp_and_layercam_closed_forms_on_a_linear_score():
    """S = sum_k w_k mean(A_k) + b, so g_k = w_k / Z everywhere (Z = h * w). Grad-CAM++'s
    alpha = g^2 / (2 g^2 + g^3 sum A_k) makes the channel weight Z alpha ReLU(g) =
    ReLU(w_k) / (2 + w_k mean(A_k)); Layer-CAM's per-pixel weight is ReLU(w_k / Z)."""
    model = gap_model(shape=(4, 4, 2), filters=4, classes=2, kernel=1, bias=False, seed=3)
    kernel = model.get_layer("conv").get_weights()[0][0, 0]
    w = model.get_layer("head").get_weights()[0]
    x = images((2, 4, 4, 2), seed=6)
    acts = np.maximum(np.einsum("bhwc,ck->bhwk", x, kernel), 0)
    for c in (0, 1):
        assert (w[:, c] > 0).any() and (w[:, c] < 0).any()
        out = Explainer(model, ["gradcam_pp", "layercam"]).explain(x, np.full(2, c))
        pp = np.maximum(w[:, c], 0) / (2 + w[:, c] * acts.mean(axis=(1, 2)))  # (B, k)
        assert np.allclose(out["gradcam_pp"].raw, np.maximum(np.einsum("bhwk,bk->bhw", acts, pp), 0), atol=1e-5)
        layer = np.maximum(w[:, c] / 16, 0)
        assert np.allclose(out["layercam"].raw, np.maximum(acts @ layer, 0), atol=1e-6)


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_gradcam_equals_the_analyzer(score):
    keras.utils.set_random_seed(7)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    x = images((3, 28, 28, 3), seed=8)
    targets = np.array([backend.TARGET_PREDICTED, 0, 2])
    layer = backend.last_conv_layer(model)
    want = backend.Analyzer(model, [], layer, "tf", score=score).run(x, targets, group=1)
    explainer = Explainer(model, ["gradcam"], preprocess_mode="tf", score=score)
    got = explainer.explain(x, targets)["gradcam"]
    assert explainer.cam_layer == layer
    assert np.allclose(got.raw, want["cam"], rtol=1e-4, atol=1e-7)
    assert np.allclose(got.maps, want["cam_up"], rtol=1e-4, atol=1e-7)
    assert explainer.resolve_targets(x, targets)[0].tolist() == want["target"].tolist()


def test_occlusion_of_a_linear_model_is_the_hand_computed_drop():
    model, w, b = linear_model(shape=(6, 6, 1), classes=2, seed=4)
    x = images((2, 6, 6, 1), seed=9)
    targets = np.array([1, 0])
    params = {"occlusion": {"patch": 3, "stride": 2, "fill": 0.25}}
    res = Explainer(model, ["occlusion"], params=params).explain(x, targets)["occlusion"]
    corners = [(r, c) for r in (0, 2, 3) for c in (0, 2, 3)]  # the last patch reaches the border
    total, covered = np.zeros((2, 6, 6)), np.zeros((6, 6))
    for j, (r, c) in enumerate(corners):
        occluded = x.copy()
        occluded[:, r:r + 3, c:c + 3] = 0.25
        drop = np.einsum("bn,bn->b", (x - occluded).reshape(2, -1), w[:, targets].T)
        assert np.allclose(res.raw[:, j // 3, j % 3], drop, atol=1e-5)
        total[:, r:r + 3, c:c + 3] += drop[:, None, None]
        covered[r:r + 3, c:c + 3] += 1
    assert np.allclose(res.maps, total / covered, atol=1e-5)
    assert res.signed


def test_every_method_runs_on_a_keras_application_inside_a_sequential():
    keras.utils.set_random_seed(10)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    x = images((2, 32, 32, 3), seed=11)
    params = {"smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 2},
              "occlusion": {"patch": 16, "stride": 16}}
    others = [m for m in attribution.METHODS if m != "cam"]
    assert backend.last_conv_layer(model) == "vgg16/block5_conv3"
    # an 8x8 CAM layer of the base: 256 Score-CAM channels (block5 has 512 at 2x2)
    explainer = Explainer(model, others, "caffe", cam_layer="vgg16/block3_conv3", params=params, max_batch=64)
    out = explainer.explain(x, np.full(2, backend.TARGET_PREDICTED))
    assert out["gradcam"].raw.shape == (2, 8, 8)
    with pytest.raises(InputError, match="global average pooling"):  # block5_pool lies in between
        Explainer(model, ["cam"], "caffe")
    out.update(Explainer(model, ["cam"], "caffe", cam_layer="vgg16/block5_pool").explain(x, np.array([0, 1])))
    assert sorted(out) == sorted(attribution.METHODS)
    for name, res in out.items():
        assert res.maps.shape == (2, 32, 32), name
        assert np.isfinite(res.maps).all() and np.isfinite(res.raw).all(), name
    # the ReLU override reached the layers of the nested base
    assert not np.allclose(out["guided_backprop"].raw, out["saliency"].raw)


def test_scorecam_by_hand_and_independent_of_the_channel_batch():
    """The CAM layer keeps the input size, so H_k is A_k scaled to [0, 1] (no resizing)."""
    model = gap_model(shape=(6, 6, 2), filters=5, classes=3, head="softmax", seed=12)
    x = images((2, 6, 6, 2), seed=13)
    targets = np.array([2, 0])
    small = Explainer(model, ["scorecam"], params={"scorecam": {"channel_batch": 1}}).explain(x, targets)
    large = Explainer(model, ["scorecam"]).explain(x, targets)
    acts = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv").output)(x))
    probs_black = np.asarray(model(np.zeros_like(x)))[[0, 1], targets]
    weights = np.zeros((2, 5))
    for k in range(5):
        a = acts[..., k]
        low, high = a.min(axis=(1, 2), keepdims=True), a.max(axis=(1, 2), keepdims=True)
        mask = np.where(high > low, (a - low) / np.where(high > low, high - low, 1), 0)
        weights[:, k] = np.asarray(model(x * mask[..., None]))[[0, 1], targets] - probs_black
    expected = np.maximum(np.einsum("bhwk,bk->bhw", acts, weights), 0)
    assert expected.max() > 0
    assert np.allclose(large["scorecam"].raw, expected, atol=1e-6)
    assert np.allclose(small["scorecam"].raw, large["scorecam"].raw, atol=1e-7)
    assert np.allclose(small["scorecam"].maps, expected, atol=1e-6)


def test_chunking_does_not_change_the_perturbation_methods():
    model = gap_model(shape=(8, 8, 3), filters=4, classes=3, head="softmax", seed=14)
    x = images((3, 8, 8, 3), seed=15)
    methods = ["smoothgrad", "integrated_gradients", "occlusion", "saliency"]
    params = {"smoothgrad": {"samples": 5}, "integrated_gradients": {"steps": 7}}
    one = Explainer(model, methods, params=params, max_batch=1).explain(x, np.array([0, 1, 2]))
    many = Explainer(model, methods, params=params, max_batch=64).explain(x, np.array([0, 1, 2]))
    for name in methods:
        assert np.allclose(one[name].raw, many[name].raw, atol=1e-6), name
    silent = Explainer(model, ["smoothgrad"], params={"smoothgrad": {"noise": 0.0, "samples": 3}})
    assert np.allclose(silent.explain(x, np.array([0, 1, 2]))["smoothgrad"].raw, many["saliency"].raw, atol=1e-6)


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
    res = attribution.cascading_randomization(model, x, np.full(2, backend.TARGET_PREDICTED),
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


def test_ssim_spearman_and_blur_match_the_reference_implementations():
    metrics = pytest.importorskip("skimage.metrics")
    stats = pytest.importorskip("scipy.stats")
    ndimage = pytest.importorskip("scipy.ndimage")
    a = images((20, 24), seed=20)
    b = np.clip(a + 0.2 * rng(21).normal(size=a.shape), 0, 1)
    want = metrics.structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
    assert np.isclose(attribution.ssim(a, b), want, atol=1e-7)
    assert np.isclose(attribution.ssim(a, a), 1.0)
    tied = np.round(b * 4)  # many ties
    assert np.isclose(attribution.spearman(a, tied), stats.spearmanr(a.ravel(), tied.ravel())[0], atol=1e-12)
    x = images((2, 10, 12, 3), seed=22)
    blurred = attribution.baseline_image(x, "blur", blur_sigma=1.7)
    assert np.allclose(blurred, ndimage.gaussian_filter(x, sigma=(0, 1.7, 1.7, 0), mode="reflect"), atol=1e-6)


def test_bad_method_parameter_and_cam_layer_are_named():
    model = gap_model()
    with pytest.raises(InputError, match="'lime' is unknown"):
        Explainer(model, ["lime"])
    with pytest.raises(InputError, match="occlusion: unknown parameter.*size"):
        Explainer(model, ["occlusion"], params={"occlusion": {"size": 3}})
    with pytest.raises(InputError, match="score"):
        Explainer(model, ["saliency"], score="margin")
    cnn = models.build_mnist_cnn((28, 28, 1), 10)  # Flatten and a hidden dense layer, not global average pooling
    with pytest.raises(InputError, match="CAM"):
        Explainer(cnn, ["cam"])
