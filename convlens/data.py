"""Datasets and image loading (numpy and Pillow only).

Arrays are uint8 (N, H, W, C) images with int64 labels; pixel values reach models as float32 in
[0, 1] and any model-specific preprocessing happens inside the model step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFile, ImageOps

from convlens.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SHAPE_CLASSES = ("circle", "square", "triangle")
SUPERSAMPLE = 4
RESIZE_MODES = ("stretch", "crop", "pad")  # config ``resize``: how an image reaches the model's input size
ASPECT_TOLERANCE = 0.05  # a stretch that changes the aspect ratio by more than 5 % is flagged
# images per class of scikit-learn's handwritten digits (load_digits: 1,797 8x8 images, classes 0-9)
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
DIGITS_BOX = 20 / 28  # the digit's share of the side, as MNIST centres its digits in a 20x20 box of 28x28


@dataclass
class Dataset:
    x_train: np.ndarray  # (N, H, W, C) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
            class_names=np.array(self.class_names),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        with np.load(path, allow_pickle=False) as f:
            return cls(f["x_train"], f["y_train"], f["x_test"], f["y_test"], [str(c) for c in f["class_names"]])


def _draw_shape(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """One anti-aliased shape on a dark, slightly noisy background: (size, size, 3) uint8."""
    big = size * SUPERSAMPLE
    background = rng.integers(0, 60, size=3)
    canvas = Image.new("RGB", (big, big), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(canvas)
    # a bright colour, far from the background
    colour = tuple(int(v) for v in rng.integers(120, 256, size=3))
    radius = rng.uniform(0.22, 0.42) * big / 2 * 1.6
    margin = radius * 1.05
    cx = rng.uniform(margin, big - margin)
    cy = rng.uniform(margin, big - margin)
    angle = rng.uniform(0, 2 * math.pi)
    if SHAPE_CLASSES[label] == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        corners = 4 if SHAPE_CLASSES[label] == "square" else 3
        r = radius if corners == 3 else radius * 0.95
        points = [
            (cx + r * math.cos(angle + 2 * math.pi * k / corners), cy + r * math.sin(angle + 2 * math.pi * k / corners))
            for k in range(corners)
        ]
        draw.polygon(points, fill=colour)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.int16)
    arr = arr + rng.integers(-8, 9, size=arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_shapes(n_per_class: int = 100, image_size: int = 28, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """The generated 3-class shapes dataset; deterministic in ``seed``.

    Labels cycle circle, square, triangle, so the first 3k test images hold k of each class.
    """
    n_train, n_test = shapes_split_sizes({"n_per_class": n_per_class, "test_fraction": test_fraction})
    rng = np.random.default_rng(seed)
    labels = np.arange(n_train + n_test) % 3
    images = np.stack([_draw_shape(rng, int(lab), image_size) for lab in labels])
    return Dataset(
        images[:n_train],
        labels[:n_train].astype(np.int64),
        images[n_train:],
        labels[n_train:].astype(np.int64),
        list(SHAPE_CLASSES),
    )


def _read_class_tree(root: Path, class_names: list[str] | None = None):
    classes = class_names or sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"{root}: no class folders found; expected {root}/<class>/<image>")
    xs, ys = [], []
    size = None
    for label, cls in enumerate(classes):
        folder = root / cls
        if not folder.is_dir():
            raise InputError(f"{root}: class folder {cls!r} is missing (it exists in the training folder)")
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img, _ = read_image(f, channels=3)
            if size is None:
                size = img.shape[:2]
            if img.shape[:2] != size:
                img = resize(img, size)
            xs.append(img)
            ys.append(label)
    if not xs:
        raise InputError(f"{root}: no images found in the class folders")
    return np.stack(xs), np.array(ys, dtype=np.int64), classes


def load_folder(train_dir: str | Path, test_dir: str | Path) -> Dataset:
    """A dataset from ``train_dir/<class>/*`` and ``test_dir/<class>/*``; sizes follow the first image."""
    x_train, y_train, classes = _read_class_tree(Path(train_dir))
    x_test, y_test, _ = _read_class_tree(Path(test_dir), classes)
    if x_test.shape[1:3] != x_train.shape[1:3]:
        x_test = np.stack([resize(im, x_train.shape[1:3]) for im in x_test])
    return Dataset(x_train, y_train, x_test, y_test, classes)


def load_mnist(path: str | Path) -> Dataset:
    """MNIST from a local ``mnist.npz`` in the Keras layout, as (N, 28, 28, 1) uint8."""
    with np.load(path, allow_pickle=False) as f:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(f.files)
        if missing:
            raise InputError(f"{path}: not an mnist.npz in the Keras layout (missing {', '.join(sorted(missing))})")
        return Dataset(
            f["x_train"][..., None],
            f["y_train"].astype(np.int64),
            f["x_test"][..., None],
            f["y_test"].astype(np.int64),
            [str(d) for d in range(10)],
        )


def digits_test_counts(test_fraction: float) -> list[int]:
    """Test images per class of the digits dataset (each class's share rounded)."""
    return [int(round(n * test_fraction)) for n in DIGITS_CLASS_COUNTS]


def make_digits(image_size: int = 28, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits (shipped in its wheel: no download) as MNIST-like images.

    Each 8x8 image (values 0-16) is scaled to 0-255 and upscaled with a bicubic filter (Pillow, on
    float values, then clipped and rounded) to a centred box of ``round(image_size * 20 / 28)`` pixels
    on a black ``image_size`` square: at 28 px a 20x20 digit with a 4-pixel border, MNIST's layout.
    The split is stratified and seeded: each class gives ``round(count * test_fraction)`` test images;
    the test split interleaves classes 0, 1, ..., 9, so the first 10k test images hold k of each
    digit; the training split is shuffled. Returns (N, S, S, 1) uint8 images.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    images, target = raw.images * (255.0 / 16.0), raw.target.astype(np.int64)
    counts = np.bincount(target, minlength=10)
    if tuple(counts.tolist()) != DIGITS_CLASS_COUNTS:
        raise InputError(
            f"scikit-learn's load_digits has class counts {counts.tolist()}, not the expected "
            f"{list(DIGITS_CLASS_COUNTS)}; this scikit-learn version is not supported"
        )
    rng = np.random.default_rng(seed)
    test_parts, train_parts = [], []
    for label, n_test in enumerate(digits_test_counts(test_fraction)):
        order = rng.permutation(np.flatnonzero(target == label))
        test_parts.append(order[:n_test])
        train_parts.append(order[n_test:])
    longest = max(len(part) for part in test_parts)
    test = np.array([part[k] for k in range(longest) for part in test_parts if k < len(part)], dtype=np.int64)
    train = rng.permutation(np.concatenate(train_parts))
    box = max(1, int(round(image_size * DIGITS_BOX)))
    top = (image_size - box) // 2
    out = np.zeros((len(images), image_size, image_size, 1), dtype=np.uint8)
    for i, img in enumerate(images):
        big = Image.fromarray(img.astype(np.float32)).resize((box, box), Image.Resampling.BICUBIC)
        out[i, top : top + box, top : top + box, 0] = np.clip(np.asarray(big), 0, 255).round().astype(np.uint8)
    return Dataset(out[train], target[train], out[test], target[test], [str(d) for d in range(10)])


def build_dataset(spec: dict, seed: int) -> Dataset:
    """The dataset a config entry describes."""
    if spec["kind"] == "shapes":
        return make_shapes(spec["n_per_class"], spec["image_size"], spec["test_fraction"], seed)
    if spec["kind"] == "digits":
        return make_digits(spec["image_size"], spec["test_fraction"], seed)
    if spec["kind"] == "folder":
        return load_folder(spec["train_dir"], spec["test_dir"])
    if spec["kind"] == "mnist":
        return load_mnist(spec["path"])
    raise InputError(f"unknown dataset kind {spec['kind']!r}")


def read_image(path: str | Path, channels: int) -> tuple[np.ndarray, str | None]:
    """Decode an image file to (H, W, channels) uint8, upright (its EXIF orientation applied), with
    a note when it was turned or its mode converted.

    Raises InputError naming the file when it cannot be read or decoded (a truncated file too: not
    padded, whatever ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says), and for an image of more
    than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a decompression bomb, or a photo far larger than
    any model input): Pillow only warns between one and two times that limit; here both are errors.
    """
    try:
        with Image.open(path) as im:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and im.width * im.height > limit:
                raise InputError(
                    f"cannot read image {path}: {im.width}x{im.height} pixels is more than the "
                    f"limit of {limit} pixels (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)"
                )
            lenient = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, even where WeasyPrint set True
            try:
                im.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = lenient
            mode = im.mode
            notes = []
            orientation = _orientation(im)
            if orientation not in (None, 1):
                im = ImageOps.exif_transpose(im)
                notes.append(f"turned upright (EXIF orientation {orientation})")
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                im = _to_8bit(im)
                notes.append(f"{mode} image scaled to 8 bits")
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            target = "RGB" if channels == 3 else "L"
            if has_alpha:
                # composite on black: the same colour as the transforms' constant fill
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
                notes.append(f"{mode} image composited on black")
            if im.mode != target:
                notes.append(f"{mode} image converted to {'RGB' if channels == 3 else 'grayscale'}")
                im = im.convert(target)
            converted = im.copy()
            note = f"{path}: " + ", ".join(notes) if notes else None
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"cannot read image {path}: more than twice the limit of {Image.MAX_IMAGE_PIXELS} "
            f"pixels (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?): {exc}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from exc
    arr = np.asarray(converted, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr, note


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)  # the EXIF Orientation tag
    except (OSError, ValueError, SyntaxError):
        return None


def _to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit or float image scaled by its own range to 8-bit grayscale."""
    arr = np.asarray(im, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = np.zeros(arr.shape) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def resize(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W, C) uint8 image to ``size_hw`` with a bicubic filter."""
    if tuple(image.shape[:2]) == tuple(size_hw):
        return image
    channels = image.shape[2]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    out = np.asarray(pil.resize((size_hw[1], size_hw[0]), Image.Resampling.BICUBIC), dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def fit(image: np.ndarray, size_hw: tuple[int, int], mode: str = "stretch") -> tuple[np.ndarray, float]:
    """An (H, W, C) uint8 image brought to ``size_hw`` by config ``resize``:

    - ``stretch``: resized to the size, the aspect ratio changed;
    - ``crop``: the largest centred region of the target's aspect ratio, resized to the size;
    - ``pad``: resized to fit inside the size with its aspect ratio kept, centred on black (the
      transforms' constant fill colour).

    Returns (image, aspect change): the factor by which the content's width-to-height ratio
    changed (1.0 for crop and pad, and when no resize was needed).
    """
    if mode not in RESIZE_MODES:
        raise InputError(f"resize: {mode!r} is not allowed; allowed: {', '.join(RESIZE_MODES)}")
    src_h, src_w = image.shape[:2]
    h, w = size_hw
    if (src_h, src_w) == (h, w):
        return image, 1.0
    if mode == "stretch":
        return resize(image, (h, w)), (w / h) / (src_w / src_h)
    if mode == "crop":
        if src_w * h > w * src_h:  # wider than the target: keep the full height
            crop_h, crop_w = src_h, max(1, round(src_h * w / h))
        else:
            crop_h, crop_w = max(1, round(src_w * h / w)), src_w
        top, left = (src_h - crop_h) // 2, (src_w - crop_w) // 2
        return resize(image[top : top + crop_h, left : left + crop_w], (h, w)), 1.0
    scale = min(h / src_h, w / src_w)
    new_h, new_w = max(1, min(h, round(src_h * scale))), max(1, min(w, round(src_w * scale)))
    out = np.zeros((h, w, image.shape[2]), dtype=np.uint8)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resize(image, (new_h, new_w))
    return out, 1.0


def stretched(aspect_change: float) -> bool:
    """Whether a resize changed the aspect ratio by more than ``ASPECT_TOLERANCE``."""
    return abs(math.log(aspect_change)) > math.log1p(ASPECT_TOLERANCE)


def shapes_split_sizes(ds: dict) -> tuple[int, int]:
    """(train, test) sizes of a generated shapes dataset."""
    total = 3 * ds["n_per_class"]
    n_test = int(round(total * ds["test_fraction"]))
    return total - n_test, n_test


def split_sizes(ds: dict) -> tuple[int, int] | None:
    """(train, test) sizes of a dataset config entry when known without reading files, else None."""
    if ds["kind"] == "shapes":
        return shapes_split_sizes(ds)
    if ds["kind"] == "digits":
        n_test = sum(digits_test_counts(ds["test_fraction"]))
        return sum(DIGITS_CLASS_COUNTS) - n_test, n_test
    return None


def load_input_image(entry: dict, info, datasets_cache: dict) -> tuple[np.ndarray, str | None, list[str], float]:
    """An image as the model sees it: (H, W, C) uint8 at the model's input size, its true class name
    (from its dataset, or the entry's ``label``: a folder image's class folder or labels.csv; else None),
    notes on conversions, and how much the resize changed its aspect ratio (``data.fit``; the entry's
    ``resize`` mode, default ``stretch``)."""
    h, w, c = info.input_shape
    notes = []
    label = entry.get("label")
    if entry.get("dataset_npz"):
        npz = entry["dataset_npz"]
        if npz not in datasets_cache:
            datasets_cache[npz] = Dataset.load(npz)
        ds = datasets_cache[npz]
        if entry["index"] >= len(ds.x_test):
            raise InputError(
                f"{entry['dataset']} test[{entry['index']}]: the test split has only {len(ds.x_test)} images"
            )
        image = ds.x_test[entry["index"]]
        label = ds.class_names[int(ds.y_test[entry["index"]])]
        if image.shape[2] != c:
            image = np.repeat(image, 3, axis=2) if c == 3 else image.mean(axis=2, keepdims=True).astype(np.uint8)
            notes.append(f"converted from {ds.x_test.shape[3]} to {c} channels")
    else:
        image, note = read_image(entry["path"], channels=c)
        if note:
            notes.append(note)
    aspect = 1.0
    if image.shape[:2] != (h, w):
        mode = entry["resize"]
        notes.append(f"resized from {image.shape[1]}x{image.shape[0]} to {w}x{h} ({mode})")
        image, aspect = fit(image, (h, w), mode)
    return image, label, notes, aspect
