"""Photometric transforms (sensitivity.photometric, and in the Analyzer's step) against known answers:
scipy's Gaussian filter, numpy formulas, Pillow's JPEG, and noise statistics."""

import io

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from PIL import Image  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from convlens import transform_kinds as tk  # noqa: E402
from convlens import transforms as tr  # noqa: E402
from convlens.sensitivity import metrics as sensitivity  # noqa: E402
from convlens.sensitivity import photometric as ph  # noqa: E402
from convlens.sensitivity.analyzer import Analyzer  # noqa: E402


def op(kind, params, images, seeds=None):
    field = ph.noise_field(images, seeds) if seeds is not None else None
    return np.asarray(ph.apply(kind, params, images.astype("float32"), field))


def smooth_image(n=2, h=32, w=40, seed=0, texture=0.02):
    """A smooth colour image (low frequencies plus a little texture), values well inside [0, 1]."""
    r = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(n):
        a, b, c = r.random(3) * 4
        img = np.stack([0.5 + 0.3 * np.sin(a * xs + b * ys + k) * np.cos(c * ys) for k in range(3)], -1)
        out.append(img + texture * r.standard_normal(img.shape))
    return np.clip(np.stack(out), 0, 1).astype("float32")


def test_every_photometric_kind_has_its_operation_and_an_identity_matrix():
    assert set(tk.PHOTOMETRIC) == {"blur", "noise", "brightness", "contrast", "jpeg"}
    assert [k for k in tk.PHOTOMETRIC if tk.REGISTRY[k].seeded] == ["noise"]
    for name in tk.PHOTOMETRIC:
        assert callable(ph.operation(name)) and not tk.REGISTRY[name].equivariant
        params = {p.name: 0.5 if p.name != "quality" else 50 for p in tk.REGISTRY[name].params}
        t = tr.Transform(name, params)
        assert t.photometric and np.array_equal(t.matrix(9, 12), np.eye(3))
    assert not tr.Transform("rotate", {"angle_deg": 90}).photometric


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.3])
def test_blur_equals_scipy_gaussian_filter_with_reflect_boundaries(sigma):
    image = np.random.default_rng(1).random((2, 17, 23, 3)).astype("float32")
    want = gaussian_filter(image.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect", truncate=4.0)
    assert np.abs(op("blur", {"sigma_px": sigma}, image) - want).max() < 1e-5
    impulse = np.zeros((1, 41, 41, 1), "float32")
    impulse[0, 20, 20, 0] = 1
    got = op("blur", {"sigma_px": sigma}, impulse)[0, :, :, 0]
    assert abs(got.sum() - 1) < 1e-5  # a normalized kernel, away from the border
    k = ph.gaussian_kernel(sigma)
    r = len(k) // 2
    assert np.allclose(got[20 - r : 21 + r, 20 - r : 21 + r], np.outer(k, k), atol=1e-7)
    x = np.arange(-r, r + 1)  # the Gaussian itself, normalized over the kernel's support
    assert np.allclose(k, np.exp(-(x**2) / (2 * sigma**2)) / np.exp(-(x**2) / (2 * sigma**2)).sum())
    constant = np.full((1, 31, 29, 2), 0.37, "float32")
    assert np.abs(op("blur", {"sigma_px": sigma}, constant) - 0.37).max() < 1e-6


def test_blur_wider_than_the_image_is_refused_in_words():
    assert tr.Transform("blur", {"sigma_px": 2.0}).problem((28, 28, 3)) is None
    message = tr.Transform("blur", {"sigma_px": 8.0}).problem((28, 28, 3))
    assert "radius of 32 px" in message and "28x28" in message
    assert tr.Transform("jpeg", {"quality": 50}).problem((8, 8, 3)) is None
    assert "4" in tr.Transform("jpeg", {"quality": 50}).problem((8, 8, 4))
    assert tr.Transform("rotate", {"angle_deg": 90}).problem((2, 2, 4)) is None


@pytest.mark.parametrize("delta", [-0.3, 0.15, 0.6])
def test_brightness_is_an_added_constant_clipped_to_the_pixel_range(delta):
    image = np.random.default_rng(2).random((2, 6, 7, 3)).astype("float32")
    assert np.allclose(op("brightness", {"delta": delta}, image), np.clip(image + delta, 0, 1), atol=1e-7)


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5])
def test_contrast_scales_about_each_channels_mean(factor):
    image = np.random.default_rng(3).random((2, 6, 7, 3)).astype("float32")
    mean = image.mean(axis=(1, 2), keepdims=True)
    assert np.allclose(
        op("contrast", {"factor": factor}, image), np.clip(mean + factor * (image - mean), 0, 1), atol=1e-6
    )
    import tensorflow as tf  # the same as TensorFlow's own adjust_contrast, before clipping

    if factor <= 1:
        assert np.allclose(
            op("contrast", {"factor": factor}, image), tf.image.adjust_contrast(image, factor), atol=1e-6
        )


def test_image_seeds_depend_on_the_run_seed_and_the_image_not_on_its_company():
    seeds = ph.image_seeds(42, ["a", "b", "c"])
    assert seeds.dtype == np.int64 and len(set(seeds.tolist())) == 3 and (seeds >= 0).all()
    assert ph.image_seeds(42, ["c", "a"]).tolist() == [seeds[2], seeds[0]]
    assert ph.image_seeds(7, ["a"])[0] != seeds[0]


def test_noise_is_reproducible_independent_of_batch_position_and_has_the_requested_std():
    grey = np.full((3, 64, 64, 3), 0.5, "float32")
    seeds = ph.image_seeds(42, ["a", "b", "c"])
    batch = op("noise", {"std": 0.05}, grey, seeds)
    assert np.array_equal(batch, op("noise", {"std": 0.05}, grey, seeds))  # the same seed, the same noise
    alone = op("noise", {"std": 0.05}, grey[:1], seeds[2:])  # image c alone, first in its batch
    assert np.array_equal(alone[0], batch[2])
    assert not np.allclose(batch[0], batch[1])  # different images, different noise
    for image in batch:  # no clipping at 0.5 ± 10 std: the measured std is the requested one
        assert abs((image - 0.5).std() - 0.05) < 0.002 and abs((image - 0.5).mean()) < 0.002
    # the same field scaled: a sweep is one draw at several magnitudes
    assert np.allclose(op("noise", {"std": 0.1}, grey, seeds) - 0.5, 2 * (batch - 0.5), atol=1e-6)
    assert np.all(op("noise", {"std": 1.0}, grey, seeds) <= 1) and np.all(op("noise", {"std": 1.0}, grey, seeds) >= 0)


def pillow_jpeg(image, quality):
    """Pillow's encode and decode of one (H, W, 3) image in [0, 1]."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).astype(np.float32) / 255


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_jpeg_agrees_with_pillow(quality):
    image = smooth_image()
    got = op("jpeg", {"quality": quality}, image)
    for g, original in zip(got, image, strict=False):
        want = pillow_jpeg(original, quality)
        # two libjpeg builds, the same quality tables and 4:2:0 subsampling: the same pixels here (measured:
        # identical), up to rounding in the colour conversion and the DCT elsewhere
        assert np.abs(g - want).mean() < 0.001 and np.abs(g - want).max() < 0.02
        assert np.abs(g - original).mean() > 0.5 * np.abs(want - original).mean()


def test_jpeg_at_quality_100_is_nearly_the_identity_and_lower_quality_loses_more():
    image = smooth_image(seed=4, texture=0)  # smooth colours: 4:2:0 chroma subsampling loses little
    errors = [np.abs(op("jpeg", {"quality": q}, image) - image).mean() for q in (100, 50, 10)]
    assert errors[0] < 0.004 and errors[0] < errors[1] < errors[2]
    grey = op("jpeg", {"quality": 75}, np.full((1, 8, 8, 1), 0.5, "float32"))  # one channel works too
    assert grey.shape == (1, 8, 8, 1) and np.abs(grey - 128 / 255).max() < 1.5 / 255


def tiny_model():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


SPECS = [
    {"kind": "rotate", "angle_deg": 90},
    {"kind": "blur", "sigma_px": 1.0},
    {"kind": "noise", "std": 0.1},
    {"kind": "brightness", "delta": 0.2},
    {"kind": "contrast", "factor": 0.5},
    {"kind": "jpeg", "quality": 30},
    {"kind": "hflip"},
]


def test_the_model_step_applies_warps_and_pixel_operations_to_the_right_rows():
    """Mixed geometric and photometric transforms in one compiled step: each row is its warp or its
    pixel operation of the original, image-major, with noise seeded per image."""
    model = tiny_model()
    transforms = tr.build_transforms(SPECS)
    st = sensitivity.Study.build(transforms, 16, 16, ["c1"], {"c1": tr.Grid.even((16, 16), (16, 16))}, "constant", 0)
    pixels = smooth_image(3, 16, 16, seed=5)
    seeds = ph.image_seeds(0, ["x", "y", "z"])
    analyzer = Analyzer(model, ["c1"], "unit", samplers=st.samplers, warps=st, maps=False)
    out = analyzer.run(pixels, len(transforms), seeds=seeds)
    inputs = out["inputs"].reshape(3, len(transforms), 16, 16, 3)
    field = ph.noise_field(pixels, seeds)
    for k, t in enumerate(transforms):
        if t.photometric:
            want = np.asarray(ph.apply(t.kind, t.params, pixels, field))
        else:
            want = np.asarray(tr.warp(pixels, np.repeat(t.matrix(16, 16)[None], 3, 0)))
        assert np.allclose(inputs[:, k], want, atol=1e-6), t.name
    alone = analyzer.run(pixels[1:2], len(transforms), seeds=seeds[1:2])  # image y alone: the same rows
    assert np.allclose(alone["inputs"], inputs[1], atol=1e-6)
    assert np.allclose(alone["probs"], out["probs"][len(transforms) : 2 * len(transforms)], atol=1e-6)
    with pytest.raises(ValueError, match="seed per image"):
        analyzer.run(pixels, len(transforms))


def test_photometric_rows_have_invariance_prediction_and_heatmap_metrics_but_no_equivariance():
    """A photometric transform that changes nothing (blur σ 0.1: a one-tap kernel; brightness 0) gives
    cosine 1, no top-1 change and identical heatmaps, and no equivariance rows."""
    model = tiny_model()
    transforms = tr.build_transforms(
        [
            {"kind": "blur", "sigma_px": 0.1},
            {"kind": "brightness", "delta": 0},
            {"kind": "jpeg", "quality": 20},
            {"kind": "rotate", "angle_deg": 90},
        ]
    )
    st = sensitivity.Study.build(transforms, 16, 16, ["c1"], {"c1": tr.Grid.even((16, 16), (16, 16))}, "constant", 0)
    pixels = smooth_image(1, 16, 16, seed=6)
    out = Analyzer(model, ["c1"], "unit", samplers=st.samplers, warps=st, maps=True).run(pixels, len(transforms))
    maps = {"mean": out["activations"][0].mean(axis=-1)}
    stats = sensitivity.LayerStats(out["num"], out["den"], out["pooled"])
    rows = sensitivity.image_metrics(st, "img", out["inputs"], stats, out["probs"], 0, maps, back=out["back"])
    import pandas as pd

    df = pd.DataFrame(rows).set_index(["transform", "layer", "metric"])["value"]
    for name in ("blur_0.1", "brightness_0"):
        assert df[(name, "c1", "invariance_cosine")] == pytest.approx(1.0, abs=1e-6)
        assert df[(name, "output", "top1_change")] == 0 and df[(name, "output", "prob_change")] < 1e-6
        assert df[(name, "mean", "heatmap_pearson")] == pytest.approx(1.0, abs=1e-6)
        assert df[(name, "mean", "heatmap_iou20")] == 1
    table = pd.DataFrame(rows)
    equivariance = table[table["metric"].str.startswith("equivariance")]
    assert set(equivariance["transform"]) == {"identity", "rotate_90"}
    jpeg = table[table["transform"] == "jpeg_20"]
    assert set(jpeg["metric"]) == {
        "invariance_cosine",
        "top1_change",
        "prob_change",
        "kl_divergence",
        "correct",
        "heatmap_pearson",
        "heatmap_spearman",
        "heatmap_iou20",
    }
    assert df[("jpeg_20", "c1", "invariance_cosine")] < 1
