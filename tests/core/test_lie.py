"""The Lie derivative (convlens.core.lie) against exact answers and independent computations."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from convlens.core.lie import GENERATORS, argmax_max_pool, lie_derivatives  # noqa: E402
from convlens.transforms import Grid  # noqa: E402

RNG = np.random.default_rng(0)


def circular_conv(x, kernel):
    """A stride-1 circular ('wrap'-padded) convolution with a 3x3 kernel."""
    padded = tf.concat([x[:, -1:], x, x[:, :1]], axis=1)
    padded = tf.concat([padded[:, :, -1:], padded, padded[:, :, :1]], axis=2)
    return tf.nn.conv2d(padded, tf.cast(kernel, x.dtype), strides=1, padding="VALID")


def linear_circular_net(k1, k2, dense, stride2=False):
    """Two circular convolutions (optionally a stride-2 subsample after the first), then global
    average pooling and a linear head: returns (maps, logits) as lie_derivatives wants."""

    def forward(x):
        a = circular_conv(x, k1)
        if stride2:
            a = a[:, ::2, ::2]
        b = circular_conv(a, k2)
        logits = tf.reduce_mean(b, axis=[1, 2]) @ tf.cast(dense, x.dtype)
        return [a, b], logits

    return forward


def weights():
    return RNG.normal(size=(3, 3, 2, 4)), RNG.normal(size=(3, 3, 4, 3)), RNG.normal(size=(3, 5))


def test_circular_stride1_linear_net_has_zero_shift_lie_derivative():
    k1, k2, dense = weights()
    x = RNG.uniform(size=(2, 12, 12, 2)).astype(np.float32)
    grid = Grid.even((12, 12), (12, 12)).to_input()
    out, layers = lie_derivatives(linear_circular_net(k1, k2, dense), x, ["shift_x", "shift_y"], [grid, grid])
    for rel in layers:
        assert rel.shape == (4,)
        assert np.all(np.asarray(rel) <= 1e-5), np.asarray(rel)
    # the logits of a circular net with global pooling are shift invariant: zero derivative too
    assert np.all(np.asarray(out) <= 1e-4 * np.abs(linear_circular_net(k1, k2, dense)(x)[1]).max())


def test_stride2_subsampling_breaks_it():
    k1, k2, dense = weights()
    x = RNG.uniform(size=(2, 12, 12, 2)).astype(np.float32)
    grid = Grid.even((12, 12), (6, 6)).to_input()
    _, layers = lie_derivatives(linear_circular_net(k1, k2, dense, stride2=True), x, ["shift_x", "shift_y"], [grid] * 2)
    for rel in layers:
        assert np.all(np.asarray(rel) > 0.05), np.asarray(rel)


def finite_difference(forward, x, generator, h):
    """(f(T_h x) − f(x)) / h through an independent numpy warp: for a shift by h the image moves along
    its central-difference tangent, x(p) − h (x(p + 1) − x(p − 1)) / 2 (the reads' derivative at t = 0)."""
    axis = 2 if generator == "shift_x" else 1
    moved = x - h * (np.roll(x, -1, axis=axis) - np.roll(x, 1, axis=axis)) / 2
    _, a = forward(tf.constant(x))
    _, b = forward(tf.constant(moved))
    return (np.asarray(b) - np.asarray(a)) / h


@pytest.mark.parametrize("generator", ["shift_x", "shift_y"])
def test_logit_derivative_matches_a_finite_difference(generator):
    k1, k2, dense = weights()

    def forward(x):  # a smooth non-linear net, not invariant: tanh and a position-dependent head
        a = tf.tanh(circular_conv(x, k1))
        logits = tf.reshape(a[..., :1], (x.shape[0], -1)) @ tf.cast(np.ones((144, 3)) * 0.01, x.dtype)
        return [a], logits + tf.reshape(a[:, :3, 0, 0], (-1, 3))

    x = RNG.uniform(size=(1, 12, 12, 2))
    grid = Grid.even((12, 12), (12, 12)).to_input()
    out, _ = lie_derivatives(forward, x, [generator], [grid], dtype="float64")
    fd = finite_difference(forward, x, generator, -1e-6)
    assert float(out[0]) == pytest.approx(np.linalg.norm(fd), rel=1e-4)


def test_rotate_and_scale_give_finite_positive_values_and_zero_on_a_constant_image():
    k1, k2, dense = weights()
    x = RNG.uniform(size=(1, 12, 12, 2)).astype(np.float32)
    grid = Grid.even((12, 12), (12, 12)).to_input()
    out, layers = lie_derivatives(linear_circular_net(k1, k2, dense), x, list(GENERATORS), [grid, grid])
    assert np.all(np.isfinite(np.asarray(out))) and np.all(np.asarray(layers[0])[2:] > 0)
    flat = np.full((1, 12, 12, 2), 0.5, np.float32)
    out, layers = lie_derivatives(linear_circular_net(k1, k2, dense), flat, list(GENERATORS), [grid, grid])
    assert np.allclose(np.asarray(out), 0, atol=1e-6) and np.allclose(np.asarray(layers[0]), 0, atol=1e-6)


def test_stride2_layer_value_equals_the_numpy_formula():
    """For a = subsample₂(c), c a circular convolution of x, along shift_x: d/dt T_{-t/2} a(T_t x) =
    ½ D a − (D c)[::2, ::2], D the circular central difference along x (the reads' derivative at pixel
    centres). Computed here in numpy (np.roll) and compared with the JVP."""
    k1, k2, dense = weights()
    x = RNG.uniform(size=(1, 12, 12, 2))
    c = sum(
        np.roll(x, (1 - di, 1 - dj), axis=(1, 2)) @ k1[di, dj] for di in range(3) for dj in range(3)
    )  # cross-correlation with wrap, as circular_conv
    a = c[:, ::2, ::2]

    def d(v):
        return (np.roll(v, -1, axis=2) - np.roll(v, 1, axis=2)) / 2

    expected = np.linalg.norm(0.5 * d(a) - d(c)[:, ::2, ::2]) / np.linalg.norm(a)
    grid = Grid.even((12, 12), (6, 6)).to_input()
    _, layers = lie_derivatives(linear_circular_net(k1, k2, dense, stride2=True), x, ["shift_x"], [grid] * 2, "float64")
    assert float(layers[0][0]) == pytest.approx(expected, rel=1e-9)


def test_an_identity_network_has_zero_layer_lie_derivative_for_every_generator():
    """T_t⁻¹ T_t x = x: warping in and back with the same reads cancels for each generator exactly
    (edges included), so any non-zero layer value in a study is the network's."""
    x = RNG.uniform(size=(2, 10, 12, 3))
    grid = Grid.even((10, 12), (10, 12)).to_input()
    identity = lambda v: ([v], tf.reduce_sum(v, axis=[1, 2]))  # noqa: E731
    _, layers = lie_derivatives(identity, x, list(GENERATORS), [grid], "float64")
    assert np.max(np.abs(np.asarray(layers[0]))) < 1e-12


def test_a_smooth_ramp_rotates_by_its_analytic_flow():
    """On a linear ramp f(x, y) = a·x + b·y the central difference is the exact gradient, so inside the
    image the tangent of a rotation about the centre c is ∇f · J (p − c), J = ±[[0, 1], [−1, 0]] (the
    direction is transforms.rotate's; the norm does not depend on it). A network whose logits are the
    interior pixels then has ‖d/dt z‖ = ‖∇f · J (p − c)‖ over the interior: a wrong centre, scale of t
    (radians) or difference would change it."""
    h = w = 11
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    a, b = 0.3, -0.7
    x = (a * xs + b * ys)[None, :, :, None] + 5.0

    def forward(v):
        return [v], tf.reshape(v[:, 2:-2, 2:-2, 0], (1, -1))

    grid = Grid.even((h, w), (h, w)).to_input()
    out, _ = lie_derivatives(forward, x, ["rotate"], [grid], "float64")
    px, py = xs - (w - 1) / 2, ys - (h - 1) / 2
    tangent = (a * py - b * px)[2:-2, 2:-2]
    assert float(out[0]) == pytest.approx(np.linalg.norm(tangent), rel=1e-9)


def test_a_stride1_same_max_pool_keeps_its_derivative():
    """An anti-aliased model pools 2×2 at stride 1 with "same" padding before its blur. Eager, and
    compiled with the graph built inside ``argmax_max_pool`` (as ``sensitivity.lie.LieStep`` does),
    the derivative through it equals a finite difference (TF 2.21's own second derivative of that pool
    gives 0 inside a tf.function); afterwards ``tf.nn.max_pool`` is TensorFlow's again."""
    k1, _, _ = weights()

    def forward(x):
        a = tf.nn.max_pool(tf.tanh(circular_conv(x, k1)), 2, 1, "SAME")
        return [a], tf.reshape(a[:, 2:5, 3, :], (x.shape[0], -1))  # position-dependent logits

    x = RNG.uniform(size=(1, 12, 12, 2))
    grid = Grid.even((12, 12), (12, 12)).to_input()

    def step(x):
        return lie_derivatives(forward, x, ["shift_x"], [grid], dtype="float64")

    def traced(x):
        with argmax_max_pool():
            return step(x)

    plain = tf.nn.max_pool
    eager_out, eager_layers = step(tf.constant(x))
    out, layers = tf.function(traced, autograph=False)(tf.constant(x))
    assert tf.nn.max_pool is plain
    fd = finite_difference(forward, x, "shift_x", -1e-6)
    assert np.linalg.norm(fd) > 0.1
    for value in (eager_out, out):
        assert float(value[0]) == pytest.approx(np.linalg.norm(fd), rel=1e-3)
    assert float(layers[0][0]) == pytest.approx(float(eager_layers[0][0]), rel=1e-9)


def test_the_flows_are_the_generators_velocities_about_the_centre():
    """At t = 0 a point p moves at C′(0)·(p − centre): shifts one pixel per unit along their axis,
    rotate (y down) at (dy, −dx) from the centre, scale at p − centre; at a stride-2 map (its pixel k
    at input 2k + 0.5) in map pixels, so a shift moves half a map pixel per input pixel."""
    from convlens.core.lie import flows

    f = flows(["shift_x", "shift_y", "rotate", "scale"], 5, 7, (5, 7))
    ys, xs = np.mgrid[0:5, 0:7].astype(float)
    dx, dy = xs - 3.0, ys - 2.0
    assert np.array_equal(f[0], np.stack([np.ones_like(xs), np.zeros_like(xs)], -1))
    assert np.array_equal(f[1], np.stack([np.zeros_like(xs), np.ones_like(xs)], -1))
    assert np.allclose(f[2], np.stack([dy, -dx], -1)) and np.allclose(f[3], np.stack([dx, dy], -1))
    half = flows(["shift_x", "scale"], 4, 4, (8, 8), Grid.even((8, 8), (4, 4)).to_input())
    assert np.allclose(half[0][..., 0], 0.5) and np.allclose(half[0][..., 1], 0.0)
    centre_in_map = (3.5 - 0.5) / 2  # the input's centre 3.5 in map pixels
    assert np.allclose(half[1][..., 0], np.mgrid[0:4, 0:4][1] - centre_in_map)
