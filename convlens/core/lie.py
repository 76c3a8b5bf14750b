"""Derivatives of a network under a continuous warp at t = 0 (the Lie derivative, Gruver et al. 2022):
the generator's action on an image or a map (the flow field times its central differences), and the
network's directional derivative along that tangent, from two reverse passes (one compiled step).

The one-parameter groups (``GENERATORS``), each a 3x3 core matrix C(t) (forward map, about the image
centre for rotate and scale):

- ``shift_x``, ``shift_y``: a translation by t pixels (content moves right / down);
- ``rotate``: a turn by t *radians*, counter-clockwise on screen (as ``transforms.rotate``);
- ``scale``: a scaling by e^t about the centre (t is the log of the factor).

Warping by t samples the input at T(−t) p (the groups' inverse is the same generator at −t), so at
t = 0 the warped image changes at pixel p by ∇f(p) · v(p), v(p) = −P·C′(0)·Q·p the flow (P, Q the
frame from the core to the map's pixels and back). The spatial gradient is the *central difference*
(f(p + e) − f(p − e)) / 2 along each axis: a bilinear read differentiated at a pixel centre would
give a one-sided difference (towards whichever neighbour the flow points at), half a pixel off and
changing side where the flow changes sign (rotate, scale); the central difference is the mean of the
two sides, i.e. the derivative of the mean of the four bilinear reads whose cells have the point at a
corner. Boundary: ``wrap`` (circular) for shifts, so the circular-convolution answer is exact;
``nearest`` (clamped edges) for rotate and scale. A layer's map warped back by the inverse at its
grid (``transforms.Grid``: a shift of t input pixels is t / stride map pixels) adds the layer's own
action, with the opposite sign: d/dt T_{t,l}⁻¹ φ_l(T_t x) = J_l (∇x · v) + ∇φ_l · v_l⁻¹, v_l⁻¹ = +P_l·C′(0)·Q_l·p.

Pure tensor code: which rows the study wants, and their table rows, are ``sensitivity.lie``'s.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from convlens.transforms import centre_frame

GENERATORS = ("shift_x", "shift_y", "rotate", "scale")
BOUNDARY = {"shift_x": "wrap", "shift_y": "wrap", "rotate": "nearest", "scale": "nearest"}


# C′(0) of each generator: d/dt of its core matrix at t = 0
VELOCITIES = {
    "shift_x": np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float64),
    "shift_y": np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], np.float64),
    "rotate": np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 0]], np.float64),  # y down: as transform_kinds._rotation
    "scale": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], np.float64),
}


def flows(generators: list[str], height: int, width: int, input_hw: tuple[int, int], grid=None) -> np.ndarray:
    """(G, height, width, 2) float64: at each pixel of a ``height`` × ``width`` map (``grid`` its
    3x3 matrix to input pixels, None: the input) P·C′(0)·Q·p of each generator, as (x, y): how fast
    the point sampled for p moves when the map is warped back by T(t) (warping forward: minus it)."""
    to_core, from_core = frames(input_hw[0], input_hw[1], grid)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])  # (3, P)
    out = [(to_core @ VELOCITIES[g] @ from_core @ p)[:2].T.reshape(height, width, 2) for g in generators]
    return np.stack(out)


def action(maps, flow, wrap):
    """∇f · flow at every pixel of ``maps`` (N, h, w, c): per row the central differences along x
    and y (rows with ``wrap`` (N,) bool read circularly, the others with clamped edges) times the
    row's ``flow`` (N, h, w, 2) (x, y)."""
    import tensorflow as tf

    rows = wrap[:, None, None, None]

    def central(axis):
        pads = [[0, 0]] * 4
        pads[axis] = [1, 1]
        edged = tf.pad(maps, pads, mode="SYMMETRIC")  # each edge pixel repeated once: clamped neighbours
        ahead, behind = [slice(None)] * 4, [slice(None)] * 4
        ahead[axis], behind[axis] = slice(2, None), slice(None, -2)
        circular = tf.roll(maps, -1, axis) - tf.roll(maps, 1, axis)
        return tf.where(rows, circular, edged[tuple(ahead)] - edged[tuple(behind)]) / 2

    flow = tf.cast(flow, maps.dtype)
    return flow[..., 0:1] * central(2) + flow[..., 1:2] * central(1)


def frames(height: int, width: int, grid: np.ndarray | None = None):
    """(P, Q): the frame matrices taking the core (about the input centre, ``height`` × ``width``;
    translations need none) to ``grid``'s map pixels and back.

    ``grid``: the 3x3 matrix from map pixels to input pixels (``transforms.Grid.to_input``); None: the input.
    """
    g = np.eye(3) if grid is None else np.asarray(grid, np.float64)
    to_centre, from_centre = centre_frame(height, width)
    return np.linalg.inv(g) @ from_centre, to_centre @ g


@contextmanager
def argmax_max_pool():
    """Inside: ``tf.nn.max_pool`` (what Keras's pooling layers call) is a max pool whose gradient
    scatters to the argmax of each window, so that its second derivative is a gather.

    For ``lie_derivatives`` inside a tf.function. There, TensorFlow 2.21's own second derivative of a
    2×2 max pool at stride 1 with "same" padding (an anti-aliased model's pool before its blur) is zero
    when the tangent depends on the input, as the generator's action does (eager it is right), and so would be
    every later layer's derivative and the logits'. Enter it while the function traces: the graph
    keeps the pool; nothing changes after the block.
    """
    import tensorflow as tf

    plain = tf.nn.max_pool

    def pool(x, ksize, strides, padding, data_format="NHWC", name=None):
        if data_format not in (None, "NHWC") or len(x.shape) != 4:
            return plain(x, ksize, strides, padding, data_format, name)

        @tf.custom_gradient
        def forward(x):
            y, argmax = tf.nn.max_pool_with_argmax(x, ksize, strides, padding, include_batch_in_index=True)

            def gradient(dy):
                size = tf.reshape(tf.size(x, out_type=tf.int64), (1,))
                flat = tf.scatter_nd(tf.reshape(argmax, (-1, 1)), tf.reshape(dy, (-1,)), size)
                return tf.reshape(flat, tf.shape(x))

            return y, gradient

        return forward(x)

    tf.nn.max_pool = pool
    try:
        yield
    finally:
        tf.nn.max_pool = plain


def lie_derivatives(forward, images, generators: list[str], grids: list, dtype: str = "float32"):
    """The Lie derivatives of a network at each image along each generator, eager or inside a
    tf.function (compiled, build the model's graph inside ``argmax_max_pool``).

    forward: x (N, H, W, C) -> (list of layer maps (N, h, w, c), logits (N, K)); images (n, H, W, C);
    grids: per layer map, the 3x3 matrix from its pixels to input pixels (``Grid.to_input``).
    Returns (output (n * G,): ‖d/dt logits(T_t x)‖₂, layers: per layer (n * G,) ‖d/dt T_{t,l}⁻¹ φ_l(T_t x)‖ /
    ‖φ_l(x)‖), rows image-major (row = image * G + g).
    """
    import tensorflow as tf

    images = tf.cast(images, dtype)
    n, g = tf.shape(images)[0], len(generators)
    rows = n * g
    hw = (images.shape[1], images.shape[2])
    wrap = tf.tile(tf.constant([BOUNDARY[name] == "wrap" for name in generators]), [n])

    def row_flows(shape, grid):  # (rows, h, w, 2): each row its generator's flow
        return tf.tile(tf.constant(flows(generators, shape[1], shape[2], hw, grid), dtype), [n, 1, 1, 1])

    x = tf.repeat(images, g, axis=0)
    tangent = action(x, -row_flows(x.shape, None), wrap)  # the input warped forward: minus the flow
    # the network's directional derivative J·v by two reverse passes: with u a stand-in cotangent,
    # J·v is the gradient in u of <Jᵀu, v> (Jᵀu is linear in u)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            maps, logits = forward(x)
        targets = [logits, *maps]
        stand_ins = [tf.zeros_like(v) for v in targets]
        outer.watch(stand_ins)
        pulled = inner.gradient(targets, x, output_gradients=stand_ins)
        total = tf.reduce_sum(pulled * tangent)
    derivatives = outer.gradient(total, stand_ins, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    output = tf.norm(tf.reshape(derivatives[0], (rows, -1)), axis=1)
    layers = []
    for m, d_m, grid in zip(maps, derivatives[1:], grids, strict=True):
        # warped back by the inverse: the layer's own action, with the flow's sign
        d = tf.norm(tf.reshape(d_m + action(m, row_flows(m.shape, grid), wrap), (rows, -1)), axis=1)
        norm = tf.norm(tf.reshape(m, (rows, -1)), axis=1)
        # a dead map (all zero) has no relative derivative: NaN, as the equivariance error's 0/0
        layers.append(tf.where(norm > 0, d / tf.where(norm > 0, norm, tf.ones_like(norm)), np.nan))
    return output, layers
