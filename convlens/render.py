"""Grids, overlays, colormaps and colour bars with numpy and Pillow (no matplotlib: this runs per image)."""

from __future__ import annotations

import math

import numpy as np

GRID_PAD_VALUE = 255


def grid(tiles: np.ndarray, cols: int | None = None, pad: int = 1, pad_value: int = GRID_PAD_VALUE) -> np.ndarray:
    """Tile (N, h, w) or (N, h, w, 3) uint8 images into one image, row-major, ``pad`` pixels apart."""
    tiles = np.asarray(tiles)
    n = tiles.shape[0]
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    h, w = tiles.shape[1:3]
    shape = (rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad) + tiles.shape[3:]
    out = np.full(shape, pad_value, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tiles[i]
    return out


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor so the shorter side is at least ``min_side``."""
    factor = max(1, int(math.ceil(min_side / max(1, min(image.shape[:2])))))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def fit_tile(image: np.ndarray, target_px: int) -> np.ndarray:
    """A (h, w) uint8 map at a display size near ``target_px``.

    Small maps are enlarged by a whole factor (nearest, so pixels stay visible); large maps are
    shrunk with a box filter (each output pixel the mean of the area it covers).
    """
    from PIL import Image

    if image.shape[0] <= target_px:
        return upscale(image, target_px)
    size = (max(1, round(image.shape[1] * target_px / image.shape[0])), target_px)
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colormap: (..., ) values in [0, 1] -> (..., 3) uint8."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])  # red, green, blue peaks at 4v = 3, 2, 1
    rgb = np.clip(1.5 - np.abs(4.0 * v - centres), 0.0, 1.0)
    return (rgb * 255.0).round().astype(np.uint8)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) float in [0, 1] or uint8 -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured (H, W) heatmap in [0, 1] over an (H, W, C) image -> (H, W, 3) uint8."""
    base = to_rgb_uint8(image).astype(np.float64)
    colour = jet(heatmap).astype(np.float64)
    return np.clip((1.0 - alpha) * base + alpha * colour, 0, 255).round().astype(np.uint8)


def diverging(values: np.ndarray) -> np.ndarray:
    """Blue-white-red: (...,) values in [-1, 1] -> (..., 3) uint8 (negative blue, zero white, positive red)."""
    v = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)[..., None]
    red, white, blue = np.array([0.80, 0.10, 0.10]), np.ones(3), np.array([0.10, 0.25, 0.80])
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return (rgb * 255.0).round().astype(np.uint8)


def signed_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """Blend a signed (H, W) map in [-1, 1] over a greyed image, more opaque where |map| is larger."""
    base = to_rgb_uint8(image).astype(np.float64).mean(axis=-1, keepdims=True).repeat(3, axis=-1)
    weight = alpha * np.abs(np.clip(heatmap, -1.0, 1.0))[..., None]
    colour = diverging(heatmap).astype(np.float64)
    return np.clip((1.0 - weight) * base + weight * colour, 0, 255).round().astype(np.uint8)


def minmax_uint8(array: np.ndarray) -> np.ndarray:
    """Scale an array to 0..255 by its own min and max; a constant array becomes mid-grey."""
    array = np.asarray(array, dtype=np.float64)
    lo, hi = float(array.min()), float(array.max())
    if hi - lo <= 0:
        return np.full(array.shape, 128, dtype=np.uint8)
    return ((array - lo) / (hi - lo) * 255.0).round().astype(np.uint8)


def kernel_tiles(kernels: np.ndarray) -> np.ndarray:
    """First-layer kernels (kh, kw, cin, cout) -> (cout, kh, kw[, 3]) uint8, each min-max scaled.

    A 3-channel kernel is drawn in colour; any other channel count as the mean over channels.
    """
    kernels = np.asarray(kernels)
    tiles = []
    for f in range(kernels.shape[-1]):
        k = kernels[..., f]
        tiles.append(minmax_uint8(k) if k.shape[-1] == 3 else minmax_uint8(k.mean(axis=-1)))
    return np.stack(tiles)


def kernel_grid(kernels: np.ndarray, tile_px: int = 24) -> np.ndarray:
    """First-layer kernels (kh, kw, cin, cout) -> one uint8 grid, each kernel enlarged to ``tile_px``."""
    tiles = np.stack([upscale(t, tile_px) for t in kernel_tiles(kernels)])
    return grid(tiles, cols=min(16, len(tiles)), pad=2)


def pattern_to_uint8(image: np.ndarray) -> np.ndarray:
    """A gradient-ascent pattern (H, W, C) -> uint8 for display: centred, 0.15 per std, clipped.

    The same deprocessing as Deep Learning with Python 5.4, in [0, 1] units.
    """
    image = np.asarray(image, dtype=np.float64)
    std = image.std()
    out = (image - image.mean()) / (std if std > 0 else 1.0) * 0.15 + 0.5
    return to_rgb_uint8(np.clip(out, 0.0, 1.0)) if image.shape[-1] in (1, 3) else to_rgb_uint8(out.mean(-1))


# The colour scales the figures use, as 256-entry tables (for colour bars).
JET_SCALE = jet(np.linspace(0.0, 1.0, 256))
DIVERGING_SCALE = diverging(np.linspace(-1.0, 1.0, 256))
GREY_SCALE = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
BAR_GAP_PX = 2


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


BAR_FONT_PT = 6.5  # a colour bar's labels in print: above the report's 6 pt floor (convlens.plots.MIN_FONT_PT)
MM_PER_PT = 25.4 / 72


def bar_font(width: int, printed_mm: float | None = None) -> int:
    """The label font size (px) of a colour bar under an image ``width`` pixels wide: BAR_FONT_PT in
    print when the image is printed ``printed_mm`` wide (the CSS width it is shown at), else width // 16."""
    if printed_mm is None:
        return max(12, width // 16)
    return max(12, math.ceil(BAR_FONT_PT * MM_PER_PT * width / printed_mm))


def bar_height(width: int, printed_mm: float | None = None) -> tuple[int, int]:
    """(gradient rows, label font size) of a colour bar under an image ``width`` pixels wide."""
    return max(4, width // 25), bar_font(width, printed_mm)


def printed_width_at_height(width: int, height: int, printed_height_mm: float) -> float:
    """The printed width (mm) of an image ``width`` × ``height`` px with its colour bar under it when
    the report fixes its printed height (the heatmap sheet's CSS): the bar's font, which grows with
    the print's scale, is part of the height, so the two are solved together (a few fixed-point steps)."""
    printed = printed_height_mm * width / height
    for _ in range(20):
        rows, size = bar_height(width, printed)
        new = printed_height_mm * width / (height + BAR_GAP_PX + rows + size + 3)
        if abs(new - printed) < 1e-6:
            break
        printed = new
    return printed


def fitting_labels(labels: tuple[str, ...], width: int, font, size: int) -> tuple[str, ...]:
    """The labels that fit side by side on a bar ``width`` px wide: all, else low and high, else high."""
    for chosen in [labels] + [(labels[0], labels[-1])] * (len(labels) == 3):
        if sum(font.getlength(label) for label in chosen) + size // 2 * len(chosen) <= width:
            return chosen
    return (labels[-1],)


def colour_bar(width: int, scale: np.ndarray, labels: tuple[str, ...], printed_mm: float | None = None) -> np.ndarray:
    """A compact colour bar (numpy and Pillow): a white gap, the ``scale`` (N, 3) uint8 from left (low)
    to right (high) as a gradient ``width`` pixels wide, and under it ``labels`` (low, [middle,] high)
    at the left edge, [the centre,] and the right edge; those that do not fit at the font size are left
    out (the middle first, then the low end). ``printed_mm``: the width the image is printed at, so the
    labels print at BAR_FONT_PT. Returns (h, width, 3) uint8."""
    from PIL import Image, ImageDraw

    scale = np.asarray(scale, dtype=np.uint8)
    rows, size = bar_height(width, printed_mm)
    gradient = scale[np.linspace(0, len(scale) - 1, width).round().astype(int)]
    font = _font(size)
    text = Image.new("RGB", (width, size + 3), "white")
    draw = ImageDraw.Draw(text)
    labels = fitting_labels(tuple(labels), width, font, size)
    if len(labels) == 3:
        anchors, xs = ("la", "ma", "ra"), (0, width // 2, width - 1)
    else:
        anchors, xs = ("la", "ra")[-len(labels) :], (0, width - 1)[-len(labels) :]
    for label, x, anchor in zip(labels, xs, anchors, strict=False):
        draw.text((x, 1), label, fill="black", font=font, anchor=anchor)
    gap = np.full((BAR_GAP_PX, width, 3), 255, dtype=np.uint8)
    return np.concatenate([gap, np.repeat(gradient[None], rows, axis=0), np.asarray(text)], axis=0)


def with_colour_bar(
    image: np.ndarray, scale: np.ndarray, labels: tuple[str, ...], printed_mm: float | None = None
) -> np.ndarray:
    """``image`` (H, W) grey or (H, W, 3) with ``colour_bar`` under it (grey in, grey out); ``printed_mm``:
    the width the report prints it at (its labels then print at BAR_FONT_PT)."""
    image = np.asarray(image, dtype=np.uint8)
    bar = colour_bar(image.shape[1], scale, labels, printed_mm)
    if image.ndim == 2:
        return np.concatenate([image, bar.mean(axis=-1).round().astype(np.uint8)], axis=0)
    return np.concatenate([image, bar], axis=0)


def value_label(value: float) -> str:
    """A colour bar's number, short: two significant digits, powers of ten for very small or large
    values ("3.2e-4"); ASCII (Pillow's built-in font has no minus sign)."""
    if value != 0 and not 0.01 <= abs(value) < 1e4:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.2g}"


ACTIVATION_LABELS = ("-2 sd", "mean", "+2 sd")  # activations.to_display: 64 grey levels per standard deviation
