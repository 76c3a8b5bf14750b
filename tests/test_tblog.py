"""TensorBoard logging during training (tblog): the events read back as logged."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from convlens import tblog  # noqa: E402
from tests.helpers import importable, tiny_trainable  # noqa: E402

HAVE_TENSORBOARD = importable("tensorboard.backend.event_processing.event_accumulator")


@pytest.mark.parametrize("image_epochs", [None, [2]])
def test_tensorboard_events_read_back(tmp_path, image_epochs):
    model, x, y = tiny_trainable()
    logger = tblog.TensorBoardLogger(tmp_path, x[0], image_epochs=image_epochs)
    hist = model.fit(
        x[:24], y[:24], validation_data=(x[24:], y[24:]), epochs=2, batch_size=8, verbose=0, callbacks=[logger]
    )
    events = tblog.read_events(tmp_path)
    assert events["reader"] == ("tensorboard" if HAVE_TENSORBOARD else "tensorflow")
    assert set(events["scalars"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for tag, points in events["scalars"].items():
        assert [s for s, _ in points] == [1, 2]
        assert np.allclose([v for _, v in points], hist.history[tag], rtol=1e-6)
    assert set(events["images"]) == {"kernels/conv", "feature_maps/conv"}
    image_steps = [1, 2] if image_epochs is None else [2]
    for points in events["images"].values():
        assert [s for s, _ in points] == image_steps and all(len(pngs) == 1 for _, pngs in points)
    kernels = model.get_layer("conv").get_weights()[0]  # the last logged epoch is the final model
    assert np.array_equal(events["images"]["kernels/conv"][-1][1][0][..., 0], tblog.kernel_grid(kernels))
    maps = keras.Model(model.inputs[0], model.get_layer("conv").output)(x[:1])[0]
    assert np.array_equal(
        events["images"]["feature_maps/conv"][-1][1][0][..., 0], tblog.feature_map_grid(np.asarray(maps))
    )
