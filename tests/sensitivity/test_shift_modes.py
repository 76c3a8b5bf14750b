"""Shift sweeps' ``mode``: ``fill`` (the study's fill_mode) and ``circular`` (the image rolled)."""

import numpy as np
import pytest

from convlens import transforms as tr
from convlens.config import validate
from convlens.errors import InputError
from convlens.sensitivity.lie import consistency

CIRCULAR = {"kind": "shift", "range": [-2, 2, 1], "direction": "x", "mode": "circular"}


def test_circular_sweeps_have_their_own_names_curve_and_group():
    transforms = tr.build_transforms([CIRCULAR, {"kind": "shift", "range": [-2, 2, 1], "direction": "x"}])
    names = [t.name for t in transforms]
    assert names[:3] == ["identity", "shift_dx-2_dy0_circular", "shift_dx-1_dy0_circular"]
    assert "shift_dx-2_dy0" in names and len(names) == 9
    assert transforms[1].axis == ("shift x circular", -2.0) and transforms[1].wraps and not transforms[-1].wraps
    from convlens.sensitivity.comparison import transform_group

    assert transform_group(transforms[1]) == "circular shift (even px)"
    assert transform_group(transforms[2]) == "circular shift (odd px)"
    top = [0, 1, 1, 0, 0, 2, 0, 0, 0]  # identity, circular -2..2, fill -2, -1, 1, 2
    got = consistency(transforms, np.eye(3)[top])
    # circular: offsets 0, -2, -1, 1, 2 -> classes 0, 1, 1, 0, 0: agreeing pairs 3 + 1 of 10
    assert got == {"shift_x_circular": pytest.approx(0.4), "shift_x": pytest.approx(0.6)}  # fill: 0,2,0,0,0 -> 6/10


def test_a_mode_that_is_not_allowed_is_a_one_line_error_naming_the_key():
    with pytest.raises(InputError, match=r"config.transforms\[0\].mode: 'roll' is not allowed; allowed: 'fill', 'circ"):
        tr.build_transforms([{**CIRCULAR, "mode": "roll"}])


def test_the_schema_takes_the_mode():
    cfg = validate(
        {
            "datasets": {"d": {"kind": "shapes"}},
            "models": {"m": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}},
            "images": [{"dataset": "d", "count": 1}],
            "transforms": [CIRCULAR],
        }
    )
    assert cfg["transforms"][0]["mode"] == "circular"


def test_a_wrapping_sampler_is_a_roll_and_half_a_pixel_the_mean_of_two():
    rng = np.random.default_rng(0)
    image = rng.random((6, 8))
    valid = np.ones((6, 8), bool)
    s = tr.sampler(np.array([[1, 0, 3], [0, 1, -1], [0, 0, 1.0]]), valid, wrap=True)
    moved = (image.ravel()[s.index] * s.weights).sum(axis=0).reshape(6, 8)
    assert np.array_equal(moved, np.roll(image, (-1, 3), axis=(0, 1)))
    s = tr.sampler(np.array([[1, 0, 0.5], [0, 1, 0], [0, 0, 1.0]]), valid, wrap=True)
    moved = (image.ravel()[s.index] * s.weights).sum(axis=0).reshape(6, 8)
    assert np.allclose(moved, (image + np.roll(image, 1, axis=1)) / 2)


def test_circular_shifts_through_the_model_step_roll_the_image_and_a_pointwise_net_follows_exactly():
    keras = pytest.importorskip("keras")
    from convlens.core.grids import layer_grids
    from convlens.core.layers import feature_layers
    from convlens.sensitivity import metrics as sensitivity
    from convlens.sensitivity.analyzer import Analyzer
    from tests.helpers import gap_model

    model = gap_model(shape=(8, 8, 2), kernel=1)
    layers = feature_layers(model)
    transforms = tr.build_transforms([CIRCULAR, {"kind": "shift", "dx": 1}])  # and a fill shift on black
    st = sensitivity.Study.build(transforms, 8, 8, layers, layer_grids(model, layers), "constant", 0.0)
    assert st.valid[1:5].all() and not st.valid[5].all() and st.layer_valid[0][1:5].all()
    pixels = np.random.default_rng(2).random((2, 8, 8, 2)).astype("float32")
    out = Analyzer(model, layers, "unit", samplers=st.samplers, warps=st).run(pixels, len(transforms))
    inputs = out["inputs"].reshape(2, len(transforms), 8, 8, 2)
    for i in range(2):
        for k, dx in enumerate([-2, -1, 1, 2], start=1):
            assert np.allclose(inputs[i, k], np.roll(pixels[i], dx, axis=1), atol=1e-6)
        assert np.all(inputs[i, 5][:, 0] == 0)  # the fill shift brings in black
    stats = sensitivity.LayerStats(
        [n.reshape(2, -1)[0] for n in out["num"]],
        [d.reshape(2, -1)[0] for d in out["den"]],
        [p[:6] for p in out["pooled"]],
    )
    rows = sensitivity.image_metrics(
        st, "a", out["inputs"][:6], stats, out["probs"][:6], None, {}, back=out["back"][:6], heatmaps_back={}
    )
    error = {r["transform"]: r["value"] for r in rows if r["metric"] == "equivariance_error"}
    floor = {r["transform"]: r["value"] for r in rows if r["metric"] == "equivariance_floor"}
    assert all(error[t.name] <= 1e-6 and floor[t.name] == 0 for t in transforms[1:5])
    # the numpy reference computation of the same sums agrees
    act = keras.Model(model.inputs[0], model.get_layer("conv").output)(out["inputs"][:6]).numpy()
    reference = sensitivity.layer_stats(st, [act])
    assert np.allclose(reference.num[0], stats.num[0], atol=1e-6) and np.allclose(
        reference.den[0], stats.den[0], rtol=1e-5
    )


CROP = {"kind": "shift", "range": [-2, 2, 1], "direction": "x", "mode": "crop"}


def test_a_crop_is_the_window_of_the_enlarged_image_at_the_offset():
    """Zhang 2019's protocol built independently: the 5x5 image enlarged to (S + 2m) px by scipy's
    bilinear map_coordinates (factor (S − 1 + 2m) / (S − 1) = 2 here), then a 5x5 window cut at column m − dx."""
    from scipy import ndimage

    transforms = tr.build_transforms([CROP])
    assert [t.name for t in transforms] == ["identity"] + [f"shift_dx{d}_dy0_x_crop" for d in (-2, -1, 0, 1, 2)]
    s, m = 5, 2
    f = (s - 1 + 2 * m) / (s - 1)
    image = np.random.default_rng(4).random((s, s))
    big = np.arange(s + 2 * m, dtype=float)
    src = (big - (s + 2 * m - 1) / 2) / f + (s - 1) / 2
    enlarged = ndimage.map_coordinates(image, np.meshgrid(src, src, indexing="ij"), order=1)
    for t in transforms[1:]:
        dx = t.params["dx"]
        window = enlarged[m : m + s, m - dx : m - dx + s]
        got = np.asarray(tr.warp(image[None, :, :, None].astype("float32"), t.matrix(s, s)[None]))[0, :, :, 0]
        assert np.allclose(got, window, atol=1e-5), dx
        assert tr.valid_mask(t.matrix(s, s)[None], s, s).all()  # a crop never reads outside the image


def test_crop_consistency_counts_the_crops_only():
    transforms = tr.build_transforms([CROP])
    top = [2, 0, 0, 1, 0, 1]  # the reference's class (2) is no crop's
    # crops -2..2 -> 0, 0, 1, 0, 1: agreeing pairs 3 + 1 of 10
    assert consistency(transforms, np.eye(3)[top]) == {"shift_x_crop": pytest.approx(0.4)}
