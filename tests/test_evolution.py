"""Checkpoints at chosen epochs and the strips drawn from them (evolution)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import evolution  # noqa: E402
from tests.helpers import tiny_trainable  # noqa: E402


def test_checkpoints_at_chosen_epochs_feed_the_strip(tmp_path):
    import h5py

    model, x, y = tiny_trainable(seed=1)
    submodel = keras.Model(model.inputs[0], model.get_layer("conv").output)
    captured = {}

    def capture(epoch, logs):
        captured[epoch + 1] = (model.get_layer("conv").get_weights()[0].copy(), np.asarray(submodel(x[:1]))[0])

    saver = evolution.EpochCheckpoints(tmp_path / "ckpt", [1, 2, 4])
    model.fit(
        x, y, epochs=5, batch_size=8, verbose=0, callbacks=[saver, keras.callbacks.LambdaCallback(on_epoch_end=capture)]
    )
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["epoch_001.weights.h5", "epoch_002.weights.h5", "epoch_004.weights.h5"]
    assert [p.name for p in saver.saved] == files
    final = model.get_weights()

    strip = evolution.checkpoint_strip(model, saver.saved, x[0], "conv")
    assert [s["epoch"] for s in strip] == [1, 2, 4]
    for s in strip:
        kernels, maps = captured[s["epoch"]]
        assert np.array_equal(s["kernels"], kernels)
        assert np.allclose(s["activations"], maps, atol=1e-6)
    assert not np.array_equal(strip[0]["kernels"], strip[2]["kernels"])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), final, strict=False))  # model left alone

    with h5py.File(saver.saved[1], "r+") as fh:  # perturb epoch 2's first-layer kernel in the file
        name = next(
            n
            for n in fh["layers"]
            if fh["layers"][n]["vars"].get("0") is not None and fh["layers"][n]["vars"]["0"].shape == kernels.shape
        )
        fh["layers"][name]["vars"]["0"][...] = fh["layers"][name]["vars"]["0"][...] + 1.0
    again = evolution.checkpoint_strip(model, saver.saved, x[0], "conv")
    assert np.allclose(again[1]["kernels"], captured[2][0] + 1.0)
    assert np.array_equal(again[0]["kernels"], captured[1][0]) and np.array_equal(again[2]["kernels"], captured[4][0])
