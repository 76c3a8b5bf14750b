"""Forward-mode derivatives of a network under a continuous warp at t = 0 (the Lie derivative,
Gruver et al. 2022): a differentiable bilinear warp whose sample points depend on a scalar t, and
the JVP of the logits and of each layer's map warped back, from one ``tf.autodiff.ForwardAccumulator``.

The one-parameter groups (``GENERATORS``), each a 3x3 core matrix of t (forward map, about the image
centre for rotate and scale):

- ``shift_x``, ``shift_y``: a translation by t pixels (content moves right / down);
- ``rotate``: a turn by t *radians*, counter-clockwise on screen (as ``transforms.rotate``);
- ``scale``: a scaling by e^t about the centre (t is the log of the factor).

Warping by t samples the input at T(−t) p (the groups' inverse is the same generator at −t). At
t = 0 every sample point is a pixel centre. A plain bilinear read would differentiate there to a
one-sided difference (towards whichever neighbour the flow points at), which sits half a pixel off
and changes side where the flow changes sign (rotate, scale). So each read is the mean of the four
bilinear reads whose cells have the point at either corner along each axis: at t = 0 each returns
the pixel's value exactly, and the derivative is the *central difference* (f(p + e) − f(p − e)) / 2
along each axis, times the flow's component.
Boundary: ``wrap`` (circular) for shifts, so the circular-convolution answer is exact; ``nearest``
(clamped edges) for rotate and scale. Layer maps are warped back with the same interpolation at the
layer's grid (``transforms.Grid``: a shift of t input pixels is t / stride map pixels).

Pure tensor code: which rows the study wants, and their table rows, are ``sensitivity.lie``'s.
"""

from __future__ import annotations

import numpy as np

GENERATORS = ("shift_x", "shift_y", "rotate", "scale")
BOUNDARY = {"shift_x": "wrap", "shift_y": "wrap", "rotate": "nearest", "scale": "nearest"}
SNAP = 1e-3  # sample points this close to a pixel centre floor to it (t = 0 reads pixel centres)


def core_minus_identity(t, which):
    """(N, 3, 3) tensor: each row's generator core matrix at t (N,), minus the identity (exactly 0 at t = 0).

    ``which``: (N, len(GENERATORS)) one-hot, the generator of each row.
    """
    import tensorflow as tf

    zero = tf.zeros_like(t)
    c1, s, e1 = tf.cos(t) - 1.0, tf.sin(t), tf.exp(t) - 1.0

    def mat(a11, a12, b1, a21, a22, b2):
        return tf.reshape(tf.stack([a11, a12, b1, a21, a22, b2, zero, zero, zero], axis=-1), (-1, 3, 3))

    forms = tf.stack(
        [
            mat(zero, zero, t, zero, zero, zero),  # shift_x
            mat(zero, zero, zero, zero, zero, t),  # shift_y
            mat(c1, s, zero, -s, c1, zero),  # rotate (y down: +sin in the x row, as transform_kinds._rotation)
            mat(e1, zero, zero, zero, e1, zero),  # scale by e^t
        ],
        axis=1,
    )  # (N, G, 3, 3)
    return tf.einsum("ng,ngij->nij", tf.cast(which, t.dtype), forms)


def sample_points(height: int, width: int, to_core: np.ndarray, from_core: np.ndarray, t, which):
    """Source points (N, h*w) x and y of the warp sampling each output pixel p at P·T(t)·Q·p.

    ``to_core`` P and ``from_core`` Q (3, 3, float64 numpy) take the core's frame to the map's pixels
    and back (P·Q = I). The constant part P·Q·p is computed in float64 and snapped to the pixel
    centres, so at t = 0 the points are the pixel centres exactly.
    """
    import tensorflow as tf

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    p = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])  # (3, P)
    base = (to_core @ from_core @ p)[:2]
    base = np.where(np.abs(base - np.round(base)) < 1e-9, np.round(base), base)
    delta = tf.einsum(
        "ij,njk,kp->nip",
        tf.constant(to_core, t.dtype),
        core_minus_identity(t, which),
        tf.constant(from_core @ p, t.dtype),
    )
    src = tf.constant(base, t.dtype)[None] + delta[:, :2]
    return src[:, 0], src[:, 1]


def bilinear(maps, sx, sy, wrap):
    """Bilinear reads of ``maps`` (N, h, w, c) at points (N, P) (x, y); P = h * w output pixels in
    row-major order, as the mean of the four reads whose cells start at the point's floor or one pixel
    before it along each axis (the same value at a pixel centre, and a central-difference derivative
    there; see the module docstring). ``wrap`` (N,) bool: a row reads circularly (wrap), otherwise
    with clamped edges (nearest). Returns (N, h, w, c)."""
    import tensorflow as tf

    shape = tf.shape(maps)
    h, w = maps.shape[1], maps.shape[2]
    flat = tf.reshape(maps, (shape[0], h * w, shape[3]))
    floor_x = tf.stop_gradient(tf.floor(sx + SNAP))
    floor_y = tf.stop_gradient(tf.floor(sy + SNAP))
    wrap = wrap[:, None]

    def index(v, size):
        v = tf.cast(v, tf.int32)
        return tf.where(wrap, tf.math.floormod(v, size), tf.clip_by_value(v, 0, size - 1))

    def read(yi, xi):
        return tf.gather(flat, yi * w + xi, batch_dims=1)

    def cell_read(x0, y0):  # the bilinear formula on the cell [x0, x0 + 1] x [y0, y0 + 1] (may extrapolate)
        wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
        xa, xb, ya, yb = index(x0, w), index(x0 + 1, w), index(y0, h), index(y0 + 1, h)
        top = (1 - wx) * read(ya, xa) + wx * read(ya, xb)
        bottom = (1 - wx) * read(yb, xa) + wx * read(yb, xb)
        return (1 - wy) * top + wy * bottom

    out = tf.add_n([cell_read(floor_x - dx, floor_y - dy) for dx in (0.0, 1.0) for dy in (0.0, 1.0)]) / 4
    return tf.reshape(out, shape)


def frames(generators: list[str], height: int, width: int, grid: np.ndarray | None = None):
    """(which, P, Q): the one-hot (G, len(GENERATORS)) of the generators and the frame matrices taking the
    core (about the input centre; translations need none) to ``grid``'s map pixels and back.

    ``grid``: the 3x3 matrix from map pixels to input pixels (``transforms.Grid.to_input``); None: the input.
    """
    g = np.eye(3) if grid is None else np.asarray(grid, np.float64)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], np.float64)
    which = np.zeros((len(generators), len(GENERATORS)))
    for k, name in enumerate(generators):
        which[k, GENERATORS.index(name)] = 1.0
    return which, np.linalg.inv(g) @ centre, np.linalg.inv(centre) @ g


def warp_t(maps, t_rows, generators: list[str], input_hw: tuple[int, int], grid=None, sign: float = 1.0):
    """Each row of ``maps`` (image-major, one row per image × generator) warped by its generator at
    ``sign`` · t; ``grid``: the maps' grid in the input (None: the maps are the input)."""
    import tensorflow as tf

    h, w = maps.shape[1], maps.shape[2]
    n = tf.shape(maps)[0] // len(generators)
    which, to_core, from_core = frames(generators, input_hw[0], input_hw[1], grid)
    # warping by s samples at T(−s)·p
    sx, sy = sample_points(h, w, to_core, from_core, -sign * t_rows, tf.tile(tf.constant(which), [n, 1]))
    wrap = tf.tile(tf.constant([BOUNDARY[g] == "wrap" for g in generators]), [n])
    return bilinear(maps, sx, sy, wrap)


def lie_derivatives(forward, images, generators: list[str], grids: list, dtype: str = "float32"):
    """The Lie derivatives of a network at each image along each generator, in one forward-mode pass.

    forward: x (N, H, W, C) -> (list of layer maps (N, h, w, c), logits (N, K)); images (n, H, W, C);
    grids: per layer map, the 3x3 matrix from its pixels to input pixels (``Grid.to_input``).
    Returns (output (n * G,): ‖d/dt logits(T_t x)‖₂, layers: per layer (n * G,) ‖d/dt T_{t,l}⁻¹ φ_l(T_t x)‖ /
    ‖φ_l(x)‖), rows image-major (row = image * G + g).
    """
    import tensorflow as tf

    images = tf.cast(images, dtype)
    hw = (images.shape[1], images.shape[2])
    rows = tf.shape(images)[0] * len(generators)
    x = tf.repeat(images, len(generators), axis=0)
    t = tf.zeros((len(generators),), dtype)
    with tf.autodiff.ForwardAccumulator(t, tf.ones_like(t)) as acc:
        t_rows = tf.tile(t, [tf.shape(images)[0]])
        maps, logits = forward(warp_t(x, t_rows, generators, hw))
        back = [warp_t(m, t_rows, generators, hw, g, sign=-1.0) for m, g in zip(maps, grids, strict=True)]
    output = tf.norm(tf.reshape(acc.jvp(logits), (rows, -1)), axis=1)
    layers = []
    for m, b in zip(maps, back, strict=True):
        d = tf.norm(tf.reshape(acc.jvp(b), (rows, -1)), axis=1)
        norm = tf.norm(tf.reshape(m, (rows, -1)), axis=1)
        # a dead map (all zero) has no relative derivative: NaN, as the equivariance error's 0/0
        layers.append(tf.where(norm > 0, d / tf.where(norm > 0, norm, tf.ones_like(norm)), np.nan))
    return output, layers
