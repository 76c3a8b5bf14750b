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
                Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png"
                )
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


# -- bad and unusual image files: one line naming the file, or read as a viewer shows them


def test_decompression_bomb_is_an_input_error_naming_the_file_and_the_limit(tmp_path, monkeypatch):
    Image.new("RGB", (60, 50)).save(tmp_path / "bomb.png")  # 3,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # Pillow only warns between 1x and 2x the limit
    with pytest.raises(InputError, match=r"bomb\.png: 60x50 pixels is more than the limit of 2000 pixels") as info:
        data.read_image(tmp_path / "bomb.png", channels=3)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # beyond 2x Pillow raises DecompressionBombError itself
    with pytest.raises(InputError, match=r"bomb\.png: more than twice the limit of 1000 pixels"):
        data.read_image(tmp_path / "bomb.png", channels=3)


@pytest.mark.parametrize(
    "name,content",
    [
        ("empty.png", b""),
        ("truncated.png", None),  # a real PNG cut in half
        ("text.jpg", b"just some text, not a JPEG"),
    ],
)
def test_empty_truncated_or_fake_image_files_name_the_file(tmp_path, name, content, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as importing WeasyPrint leaves it
    if content is None:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            tmp_path / "full.png"
        )
        full = (tmp_path / "full.png").read_bytes()
        content = full[: len(full) // 2]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=f"cannot read image .*{name}") as info:
        data.read_image(tmp_path / name, channels=3)
    assert "\n" not in str(info.value) and ImageFile.LOAD_TRUNCATED_IMAGES  # restored for its owner


def test_exif_rotated_jpeg_is_read_upright(tmp_path):
    # a picture whose pixels are stored turned; EXIF orientation 6 says "turn 90 degrees clockwise to view"
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :8] = 255  # a bright band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright, note = data.read_image(tmp_path / "phone.jpg", channels=3)
    as_stored = np.asarray(Image.open(tmp_path / "phone.jpg").convert("RGB"))
    assert upright.shape == (32, 16, 3) and "EXIF orientation 6" in note
    assert np.array_equal(upright, np.rot90(as_stored, k=-1))  # clockwise = np.rot90 with k=-1
    assert upright[:8].mean() > 200 and upright[-8:].mean() < 50  # the band is now on top


def test_cmyk_palette_and_16_bit_images_are_converted_with_a_note(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(tmp_path / "deep.png")
    for name, mode in (("cmyk.jpg", "CMYK"), ("palette.png", "P"), ("deep.png", "I;16")):
        image, note = data.read_image(tmp_path / name, channels=3)
        assert image.shape == (8, 8, 3) and image.dtype == np.uint8 and mode in note


def test_resize_modes_against_hand_computed_images():
    wide = np.zeros((2, 6, 1), dtype=np.uint8)
    wide[:, :, 0] = np.arange(6) * 10  # columns 0, 10, ..., 50
    # crop: the centred 2x2 region, no resampling needed
    cropped, change = data.fit(wide, (2, 2), "crop")
    assert np.array_equal(cropped[..., 0], [[20, 30], [20, 30]]) and change == 1.0
    # pad: the 2x6 image fits a 6x6 input as it is, centred between two black rows above and below
    padded, change = data.fit(wide, (6, 6), "pad")
    assert np.array_equal(padded[2:4, :, 0], wide[..., 0]) and not padded[:2].any() and not padded[4:].any()
    assert change == 1.0
    # pad with scaling: a constant 4x8 image in a 4x4 input: 2x4 of grey, centred, black above and below
    grey = np.full((4, 8, 3), 100, dtype=np.uint8)
    padded, _ = data.fit(grey, (4, 4), "pad")
    assert np.array_equal(padded[1:3], np.full((2, 4, 3), 100)) and not padded[0].any() and not padded[3].any()
    # stretch: the whole image squeezed; its aspect ratio changed by 3x (6:2 to 1:1)
    stretched, change = data.fit(grey, (4, 4), "stretch")
    assert np.array_equal(stretched, np.full((4, 4, 3), 100)) and change == pytest.approx(0.5)
    assert data.stretched(change) and not data.stretched(1.04) and data.stretched(1 / 1.06)
    # crop of a tall image keeps the full width, the centred rows
    tall = np.arange(8, dtype=np.uint8).repeat(2).reshape(8, 2, 1)  # row r holds r
    cropped, _ = data.fit(tall, (2, 2), "crop")
    assert np.array_equal(cropped[..., 0], [[3, 3], [4, 4]])
    with pytest.raises(InputError, match="resize: 'squash' is not allowed; allowed: stretch, crop, pad"):
        data.fit(wide, (2, 2), "squash")
