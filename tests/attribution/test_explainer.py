"""The Explainer (attribution.explainer): every method on a nested keras.applications model, batching
that does not change the answer, and named errors."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from convlens import attribution, models  # noqa: E402
from convlens.attribution import Explainer  # noqa: E402
from convlens.core.head import TARGET_PREDICTED  # noqa: E402
from convlens.core.layers import last_conv_layer  # noqa: E402
from convlens.errors import InputError  # noqa: E402
from tests.helpers import gap_model, images  # noqa: E402


@pytest.mark.slow  # a full-size keras.applications model
def test_every_method_runs_on_a_keras_application_inside_a_sequential():
    keras.utils.set_random_seed(10)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = images((2, 32, 32, 3), seed=11)
    params = {
        "smoothgrad": {"samples": 2},
        "integrated_gradients": {"steps": 2},
        "occlusion": {"patch": 16, "stride": 16},
    }
    others = [m for m in attribution.METHODS if m != "cam"]
    assert last_conv_layer(model) == "vgg16/block5_conv3"
    # an 8x8 CAM layer of the base: 256 Score-CAM channels (block5 has 512 at 2x2)
    explainer = Explainer(model, others, "caffe", cam_layer="vgg16/block3_conv3", params=params, max_batch=64)
    out = explainer.explain(x, np.full(2, TARGET_PREDICTED))
    assert out["gradcam"].raw.shape == (2, 8, 8)
    with pytest.raises(InputError, match="global average pooling"):  # block5_pool lies in between
        Explainer(model, ["cam"], "caffe")
    out.update(Explainer(model, ["cam"], "caffe", cam_layer="vgg16/block5_pool").explain(x, np.array([0, 1])))
    assert sorted(out) == sorted(attribution.METHODS)
    for name, res in out.items():
        assert res.maps.shape == (2, 32, 32), name
        assert np.isfinite(res.maps).all() and np.isfinite(res.raw).all(), name
    # the ReLU override reached the layers of the nested base
    assert not np.allclose(out["guided_backprop"].raw, out["saliency"].raw)


def test_chunking_does_not_change_the_perturbation_methods():
    model = gap_model(shape=(8, 8, 3), filters=4, classes=3, head="softmax", seed=14)
    x = images((3, 8, 8, 3), seed=15)
    methods = ["smoothgrad", "integrated_gradients", "occlusion", "saliency"]
    params = {"smoothgrad": {"samples": 5}, "integrated_gradients": {"steps": 7}}
    one = Explainer(model, methods, params=params, max_batch=1).explain(x, np.array([0, 1, 2]))
    many = Explainer(model, methods, params=params, max_batch=64).explain(x, np.array([0, 1, 2]))
    for name in methods:
        assert np.allclose(one[name].raw, many[name].raw, atol=1e-6), name
    silent = Explainer(model, ["smoothgrad"], params={"smoothgrad": {"noise": 0.0, "samples": 3}})
    assert np.allclose(silent.explain(x, np.array([0, 1, 2]))["smoothgrad"].raw, many["saliency"].raw, atol=1e-6)


def test_bad_method_parameter_and_cam_layer_are_named():
    model = gap_model()
    with pytest.raises(InputError, match="'lime' is unknown"):
        Explainer(model, ["lime"])
    with pytest.raises(InputError, match="occlusion: unknown parameter.*size"):
        Explainer(model, ["occlusion"], params={"occlusion": {"size": 3}})
    with pytest.raises(InputError, match="score"):
        Explainer(model, ["saliency"], score="margin")
    cnn = models.build_mnist_cnn((28, 28, 1), 10)  # Flatten and a hidden dense layer, not global average pooling
    with pytest.raises(InputError, match="CAM"):
        Explainer(cnn, ["cam"])
