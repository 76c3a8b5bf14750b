"""Transforms: matrices and warps against exact answers."""

import numpy as np
import pytest

from convlens import transforms as tr
from convlens.errors import InputError


def _warp(image, kind, params=None, **kw):
    h, w = image.shape[1:3]
    m = tr.forward_matrix(kind, params or {}, h, w)
    return np.asarray(tr.warp(image, m[None], **kw))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_identity_warp_is_exact(rng):
    image = rng.random((1, 9, 11, 3)).astype("float32")
    assert np.array_equal(_warp(image, "identity"), image)


def test_hflip_twice_is_identity(rng):
    image = rng.random((1, 7, 10, 2)).astype("float32")
    once = _warp(image, "hflip")
    assert np.array_equal(once, image[:, :, ::-1])
    assert np.array_equal(_warp(once, "hflip"), image)
    m = tr.forward_matrix("hflip", {}, 7, 10)
    assert np.allclose(m @ m, np.eye(3))


def test_vflip_matches_numpy(rng):
    image = rng.random((1, 6, 5, 1)).astype("float32")
    assert np.array_equal(_warp(image, "vflip"), image[:, ::-1])


@pytest.mark.parametrize("angle,k", [(90, 1), (-90, -1), (180, 2), (270, 3)])
def test_right_angle_rotation_equals_rot90(rng, angle, k):
    image = rng.random((1, 8, 8, 3)).astype("float32")
    expected = np.rot90(image, k, axes=(1, 2))
    assert np.abs(_warp(image, "rotate", {"angle_deg": angle}) - expected).max() < 1e-6


def test_shift_moves_content_and_fills(rng):
    image = rng.random((1, 7, 9, 3)).astype("float32") + 0.1
    out = _warp(image, "shift", {"dx": 2, "dy": 1}, fill_value=0.0)
    assert np.array_equal(out[0, 1:, 2:], image[0, :-1, :-2])
    assert np.all(out[0, 0] == 0) and np.all(out[0, :, :2] == 0)


def test_scale_about_centre_keeps_centre():
    m = tr.forward_matrix("scale", {"factor": 2.0}, 9, 9)
    centre = np.array([4.0, 4.0, 1.0])
    assert np.allclose(m @ centre, centre)
    assert np.allclose(m @ np.array([5.0, 4.0, 1.0]), [6.0, 4.0, 1.0])


@pytest.mark.parametrize(
    "kind,params",
    [
        ("shift", {"dx": 3, "dy": -2}),
        ("rotate", {"angle_deg": 30}),
        ("scale", {"factor": 0.7}),
        ("scale", {"factor": 1.4}),
    ],
)
def test_valid_mask_marks_exactly_the_pixels_not_touched_by_fill(kind, params):
    h, w = 16, 16
    ones = np.ones((1, h, w, 1), dtype="float32")
    m = tr.forward_matrix(kind, params, h, w)
    out = np.asarray(tr.warp(ones, m[None], fill_value=0.0))[0, ..., 0]
    mask = tr.valid_mask(m[None], h, w)[0]
    assert mask.any()
    assert (~mask).any() == (kind != "scale" or params["factor"] < 1)  # enlarging brings in no fill
    assert np.all(np.abs(out[mask] - 1.0) < 1e-5)  # inside: no fill mixed in
    assert np.all(out[~mask] < 1.0 - 1e-5)  # outside: some fill in every such pixel


def test_rescaled_matrix_of_flip_and_rotation_is_the_same_transform_at_layer_resolution():
    for kind, params in (("hflip", {}), ("vflip", {}), ("rotate", {"angle_deg": 90})):
        m_in = tr.forward_matrix(kind, params, 28, 28)
        assert np.allclose(
            tr.rescale_matrix(m_in, tr.Grid.even((28, 28), (7, 7))), tr.forward_matrix(kind, params, 7, 7)
        )
    assert np.array_equal(tr.rescale_matrix(np.eye(3), tr.Grid.even((28, 28), (14, 14))), np.eye(3))
    shift = tr.forward_matrix("shift", {"dx": 4, "dy": 2}, 28, 28)
    assert np.allclose(
        tr.rescale_matrix(shift, tr.Grid.even((28, 28), (14, 14))),
        tr.forward_matrix("shift", {"dx": 2, "dy": 1}, 14, 14),
    )
    # a 'valid' 3x3 layer on 29 px: map pixel u sits at input u + 1, so a flip is again a flip of 27 px
    flip = tr.forward_matrix("hflip", {}, 29, 29)
    assert np.allclose(tr.rescale_matrix(flip, tr.Grid(1, 1, 1, 1, 27, 27)), tr.forward_matrix("hflip", {}, 27, 27))


def test_grids_compose_like_the_layers_they_follow():
    outer = tr.Grid(2.0, 0.5, 2.0, 0.5, 14, 14)  # 2x2 stride-2 pooling of 28 px
    inner = tr.Grid(1.0, 1.0, 1.0, 1.0, 12, 12)  # then a 'valid' 3x3 convolution
    both = outer.then(inner)
    assert (both.ax, both.bx, both.height) == (2.0, 2.5, 12)
    u = np.array([3.0, 4.0, 1.0])
    assert np.allclose(both.to_input() @ u, outer.to_input() @ (inner.to_input() @ u))


def test_keras_vector_is_the_inverse_map():
    m = tr.forward_matrix("rotate", {"angle_deg": 17}, 20, 30)
    v = tr.keras_transform_vector(m)
    inv = np.array([[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], 1.0]])
    assert np.allclose(inv @ m, np.eye(3))


def test_ranges_expand_to_sweeps_and_identity_comes_first():
    ts = tr.build_transforms(
        [
            {"kind": "rotate", "range": [-30, 30, 15]},
            {"kind": "hflip"},
            {"kind": "shift", "range": [0, 4, 2], "direction": "x"},
            {"kind": "hflip"},
        ]
    )
    names = [t.name for t in ts]
    assert names[0] == "identity"
    # angle 0 and shift 0 change nothing: they are the identity, listed once
    assert names[1:5] == ["rotate_-30", "rotate_-15", "rotate_15", "rotate_30"]
    assert names.count("hflip") == 1 and names.count("identity") == 1
    assert [t.params for t in ts if t.kind == "shift"] == [{"dx": 2, "dy": 0}, {"dx": 4, "dy": 0}]
    assert [t.axis for t in ts if t.kind == "shift"] == [("shift x", 2.0), ("shift x", 4.0)]
    assert tr.Transform("shift", {"dx": 3, "dy": 3}).axis == ("shift diagonal", 3.0)
    assert tr.Transform("shift", {"dx": 3, "dy": 1}).axis is None and tr.Transform("hflip").axis is None
    with pytest.raises(InputError, match="takes no range"):
        tr.expand_spec({"kind": "hflip", "range": [0, 1, 1]})


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"kind": "rotate"}, "rotate needs angle_deg"),
        ({"kind": "scale", "angle_deg": 3}, "scale needs factor"),
        ({"kind": "rotate", "angle_deg": 10, "factor": 2}, "rotate takes angle_deg, not factor"),
        ({"kind": "hflip", "dx": 1}, "hflip takes no parameters, not dx"),
        ({"kind": "shift"}, "shift needs dx and/or dy"),
    ],
)
def test_transform_entries_need_their_own_parameters(spec, message):
    with pytest.raises(InputError, match=message):
        tr.build_transforms([spec])


def test_transform_names_keep_distinct_parameters_apart():
    ts = tr.build_transforms([{"kind": "rotate", "range": [-0.9, 0.9, 0.3]}])
    names = [t.name for t in ts]
    assert names == ["identity", "rotate_-0.9", "rotate_-0.6", "rotate_-0.3", "rotate_0.3", "rotate_0.6", "rotate_0.9"]
    ts = tr.build_transforms([{"kind": "scale", "factor": 1.0000001}, {"kind": "scale", "factor": 1.0000002}])
    assert len(ts) == 3


def test_sheets_draw_single_transforms_and_the_ends_of_ranges_unless_told():
    specs = [{"kind": "rotate", "range": [-30, 30, 15]}, {"kind": "hflip"}, {"kind": "scale", "range": [0.8, 1.2, 0.1]}]
    assert tr.sheet_selection(specs, None) == ["identity", "rotate_-30", "rotate_30", "hflip", "scale_0.8", "scale_1.2"]
    assert tr.sheet_selection(specs, ["hflip", "rotate_15"]) == ["identity", "rotate_15", "hflip"]
    with pytest.raises(InputError, match="sheet_transforms: rotate_45 not in the study"):
        tr.sheet_selection(specs, ["rotate_45"])


@pytest.mark.parametrize("h,w", [(16, 16), (15, 22), (1, 9), (1, 1)])
@pytest.mark.parametrize(
    "kind,params",
    [
        ("identity", {}),
        ("hflip", {}),
        ("vflip", {}),
        ("rotate", {"angle_deg": 90}),
        ("shift", {"dx": 3, "dy": -2}),
        ("shift", {"dx": 0.5, "dy": 1.25}),
        ("rotate", {"angle_deg": 17}),
        ("scale", {"factor": 0.7}),
        ("scale", {"factor": 1.3}),
    ],
)
def test_sampler_reads_what_the_keras_warp_reads_at_every_valid_pixel(rng, h, w, kind, params):
    image = rng.normal(size=(1, h, w, 5)).astype("float32")
    m = tr.forward_matrix(kind, params, h, w)
    valid = tr.valid_mask(m[None], h, w)[0]
    s = tr.sampler(m, valid)
    assert s.positions.tolist() == np.flatnonzero(valid).tolist()
    flat = image[0].reshape(h * w, 5)
    gathered = sum(wt[:, None] * flat[idx] for idx, wt in zip(s.index, s.weights, strict=False))
    warped = np.asarray(tr.warp(image, m[None]))[0].reshape(h * w, 5)[s.positions]
    assert np.allclose(gathered, warped, atol=1e-5)
    # a 90° turn about the centre keeps pixel centres on pixel centres when h - w is even
    exact = (
        kind in ("identity", "hflip", "vflip")
        or params == {"dx": 3, "dy": -2}
        or (params == {"angle_deg": 90} and (h - w) % 2 == 0)
    )
    if exact and valid.any():  # pixel centres onto pixel centres: one gather, weights exactly 1
        assert len(s.index) == 1 and np.all(s.weights == 1.0)
        assert np.array_equal(gathered, warped) or kind != "identity"
