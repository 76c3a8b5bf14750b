"""Datasets and image reading."""
import numpy as np
import pytest
from PIL import Image

from convlens import data
from convlens.errors import InputError


def test_shapes_generator_is_deterministic_and_balanced():
    a = data.make_shapes(n_per_class=10, image_size=28, test_fraction=0.3, seed=3)
    b = data.make_shapes(n_per_class=10, image_size=28, test_fraction=0.3, seed=3)
    c = data.make_shapes(n_per_class=10, image_size=28, test_fraction=0.3, seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (21, 28, 28, 3) and a.x_test.shape == (9, 28, 28, 3)
    assert a.x_train.dtype == np.uint8
    assert a.y_train[:6].tolist() == [0, 1, 2, 0, 1, 2]  # labels cycle through the classes
    assert np.bincount(np.concatenate([a.y_train, a.y_test])).tolist() == [10, 10, 10]
    assert a.class_names == ["circle", "square", "triangle"]


def test_first_test_images_cover_every_class():
    ds = data.make_shapes(n_per_class=120, seed=42)
    assert sorted(ds.y_test[:6].tolist()) == [0, 0, 1, 1, 2, 2]


def test_dataset_round_trip(tmp_path):
    ds = data.make_shapes(n_per_class=4, seed=1)
    ds.save(tmp_path / "d.npz")
    back = data.Dataset.load(tmp_path / "d.npz")
    assert np.array_equal(back.x_test, ds.x_test) and back.class_names == ds.class_names


def test_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    ds = data.load_folder(tmp_path / "train", tmp_path / "test")
    assert ds.class_names == ["cat", "dog"] and ds.x_train.shape == (4, 10, 12, 3)
    assert ds.y_test.tolist() == [0, 0, 1, 1]


def test_image_modes_are_converted_with_a_note(tmp_path):
    from skimage import data as skdata

    photo = skdata.chelsea()  # a real RGB photograph shipped with scikit-image
    Image.fromarray(photo).convert("L").save(tmp_path / "gray.png")
    Image.fromarray(photo).convert("P").save(tmp_path / "palette.png")
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(photo).save(tmp_path / "rgb.png")

    gray, note = data.read_image(tmp_path / "gray.png", channels=3)
    assert gray.shape == photo.shape and "converted to RGB" in note
    assert np.array_equal(gray[..., 0], gray[..., 1])
    _, note = data.read_image(tmp_path / "palette.png", channels=3)
    assert "P image converted" in note
    composited, note = data.read_image(tmp_path / "rgba.png", channels=3)
    assert "composited on black" in note and composited[:10, :10].max() == 0
    assert np.array_equal(composited[20:, 20:], photo[20:, 20:])
    same, note = data.read_image(tmp_path / "rgb.png", channels=3)
    assert note is None and np.array_equal(same, photo)
    one, note = data.read_image(tmp_path / "rgb.png", channels=1)
    assert one.shape == photo.shape[:2] + (1,) and "grayscale" in note


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match="broken.png"):
        data.read_image(bad, channels=3)
    with pytest.raises(InputError, match="nothere.png"):
        data.read_image(tmp_path / "nothere.png", channels=3)


def test_resize_to_model_input():
    from skimage import data as skdata

    out = data.resize(skdata.astronaut(), (64, 48))
    assert out.shape == (64, 48, 3) and out.dtype == np.uint8


def test_sixteen_bit_and_alpha_images_in_grayscale_mode(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    eight, note = data.read_image(tmp_path / "deep.png", channels=1)
    assert eight.shape == (64, 64, 1) and eight.min() == 0 and eight.max() == 255
    assert 120 <= eight[32, 0, 0] <= 135  # the middle of the ramp stays mid-grey
    assert "scaled to 8 bits" in note
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:4, ..., 3] = 255  # top half opaque white, bottom half transparent white
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    gray, note = data.read_image(tmp_path / "alpha.png", channels=1)
    assert gray[:4].min() == 255 and gray[4:].max() == 0 and "composited on black" in note
