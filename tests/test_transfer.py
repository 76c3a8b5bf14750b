"""Transfer learning: a keras.applications base (frozen or fine-tuned) with a new head, trained on a
folder dataset of photo crops."""

import numpy as np
import pytest
from PIL import Image

from convlens import data, models
from convlens.errors import InputError

keras = pytest.importorskip("keras")
skdata = pytest.importorskip("skimage.data")

SPEC = {
    "source": "train",
    "architecture": "transfer",
    "base": "MobileNetV2",
    "base_options": {"alpha": 0.35},
    "base_weights": None,
    "epochs": 2,
    "batch_size": 8,
    "learning_rate": 0.01,
    "validation_fraction": 0.2,
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A 3-class folder dataset: 32x32 crops of three scikit-image photographs (8 train, 3 test each)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for cls, photo in (("astronaut", skdata.astronaut()), ("cat", skdata.chelsea()), ("coffee", skdata.coffee())):
        for split, count in (("train", 8), ("test", 3)):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                top, left = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
                crop = Image.fromarray(photo[top : top + 96, left : left + 96]).resize((32, 32), Image.Resampling.BOX)
                crop.save(root / split / cls / f"{i}.png")
    return data.load_folder(root / "train", root / "test")


def weights_by_layer(model):
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.get_weights()}


def changed(before, after):
    return {
        name
        for name in before
        if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=False))
    }


def test_preprocess_follows_the_base():
    assert models.resolve_preprocess({**SPEC, "base": "VGG16"}) == "caffe"
    assert models.resolve_preprocess(SPEC) == "tf"
    assert models.resolve_preprocess({**SPEC, "base": "DenseNet121"}) == "torch"
    assert models.resolve_preprocess({**SPEC, "preprocess": "unit"}) == "unit"


@pytest.mark.slow
def test_frozen_base_stays_unchanged_and_the_head_trains(photos, tmp_path):
    keras.utils.set_random_seed(3)
    untrained = models.build(SPEC, photos.x_train.shape[1:], 3)
    base_name = untrained.layers[1].name
    model, history, metrics = models.train(SPEC, photos, seed=3)
    assert [layer.name for layer in model.layers] == ["image", base_name, "gap", "predictions"]
    assert len(history) == 2 and metrics["n_test"] == 9
    base_before = weights_by_layer(untrained.get_layer(base_name))
    assert changed(base_before, weights_by_layer(model.get_layer(base_name))) == set()  # BN statistics too
    assert not np.array_equal(
        untrained.get_layer("predictions").get_weights()[0], model.get_layer("predictions").get_weights()[0]
    )
    model.save(tmp_path / "transfer.keras")
    back = keras.saving.load_model(tmp_path / "transfer.keras", compile=False, safe_mode=True)
    x = photos.x_test[:2].astype("float32") / 127.5 - 1
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-5)


@pytest.mark.slow
def test_fine_tuning_n_layers_changes_only_the_top_of_the_base(photos):
    spec = {**SPEC, "fine_tune": 6}
    keras.utils.set_random_seed(3)
    untrained = models.build(spec, photos.x_train.shape[1:], 3)
    base = untrained.layers[1]
    top = {layer.name for layer in base.layers[-6:]}
    model, _, _ = models.train({**spec, "epochs": 1}, photos, seed=3)
    moved = changed(weights_by_layer(base), weights_by_layer(model.layers[1]))
    assert moved and moved <= top, moved - top
    # fine_tune true trains the whole base (not run here: a full backward pass through it is slow on CPU)
    whole = models.build({**SPEC, "fine_tune": True}, photos.x_train.shape[1:], 3).layers[1]
    assert all(layer.trainable for layer in whole.layers) and len(whole.trainable_weights) > 100
    frozen = models.build(SPEC, photos.x_train.shape[1:], 3)
    assert frozen.layers[1].trainable_weights == [] and len(frozen.trainable_weights) == 2  # the head only


def test_base_weights_from_a_file_and_one_line_errors(photos, tmp_path):
    keras.utils.set_random_seed(5)
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    donor.save_weights(tmp_path / "base.weights.h5")
    model = models.build({**SPEC, "base_weights": str(tmp_path / "base.weights.h5")}, (32, 32, 3), 3)
    for a, b in zip(donor.get_weights(), model.layers[1].get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="is not a keras.applications model; allowed: .*VGG16"):
        models.build({**SPEC, "base": "NoSuchNet"}, (32, 32, 3), 3)
    with pytest.raises(InputError) as info:
        models.build({**SPEC, "base": "InceptionV3"}, (32, 32, 3), 3)  # needs at least 75 px
    assert "cannot build keras.applications.InceptionV3" in str(info.value) and "\n" not in str(info.value)
