"""The CAM family (attribution.cams) against closed forms on conv -> global average pooling -> dense."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.attribution.cams import GradCAM, weighted_map  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402
from tests.helpers import gap_model, images, tiny_gap_model  # noqa: E402


def test_gradcam_equals_hand_computation():
    model, k, w, b = tiny_gap_model()
    x = np.random.default_rng(1).random((2, 4, 4, 2)).astype("float32")
    explainer = Explainer(model, ["gradcam"], "unit", "conv", score="logit")
    acts = np.maximum(np.einsum("bhwc,cf->bhwf", x, k[0, 0]), 0)  # (B, 4, 4, 3)
    for cls in (0, 1):
        cam = explainer.explain(x, np.full(2, cls), group=1)["gradcam"].raw
        alpha = w[:, cls] / 16.0  # d logit_c / d A_k(i, j) = W[k, c] / (h * w) through GAP
        expected = np.maximum((acts * alpha).sum(-1), 0)
        assert np.allclose(cam, expected, atol=1e-6)
    out = Analyzer(model, ["conv"], "unit").run(x, group=1)
    assert np.allclose(out["activations"][0], acts, atol=1e-6)
    logits = acts.mean(axis=(1, 2)) @ w + b
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert np.allclose(out["probs"], probs, atol=1e-6)
    assert np.allclose(out["logits"], logits, atol=1e-5)


def test_gradcam_of_probability_score_differs_by_softmax_derivative():
    model, k, w, b = tiny_gap_model(seed=3)
    x = np.random.default_rng(2).random((1, 4, 4, 2)).astype("float32")
    cam = Explainer(model, ["gradcam"], "unit", "conv", score="probability").explain(x, np.array([0]), 1)["gradcam"].raw
    acts = np.maximum(np.einsum("bhwc,cf->bhwf", x, k[0, 0]), 0)
    logits = acts.mean(axis=(1, 2)) @ w + b
    p = np.exp(logits) / np.exp(logits).sum()
    # dp0/dA_k = p0 * (W[k,0] - sum_j p_j W[k,j]) / 16
    alpha = p[0, 0] * (w[:, 0] - (p[0] * w).sum(-1)) / 16.0
    assert np.allclose(cam, np.maximum((acts * alpha).sum(-1), 0), atol=1e-6)


def test_weighted_map_of_gradcam_weights_is_relu_of_the_mean_gradient_weighted_sum():
    """What gradcam_from_gradients computed: ReLU(sum_k mean_ij(g_k) A_k)."""
    r = np.random.default_rng(4)
    a = r.random((2, 3, 5, 4)).astype("float32")
    g = r.normal(size=(2, 3, 5, 4)).astype("float32")
    got = np.asarray(weighted_map(GradCAM.weights(a, g, None), a))
    want = np.maximum(np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2))), 0)
    assert got.shape == (2, 3, 5) and np.allclose(got, want, atol=1e-6)
    assert (want == 0).any() and (want > 0).any()  # the ReLU cuts something


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
        assert np.allclose(
            attribution.normalize_map(out["cam"].maps[b])[0],
            attribution.normalize_map(out["gradcam"].maps[b])[0],
            atol=1e-5,
        )


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
