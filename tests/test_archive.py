"""Model files read without TensorFlow (convlens.archive): facts checked against the Keras model that
was saved, and every model-dependent mistake refused at config time, one line naming its key."""

import json
import zipfile

import pytest

from convlens import archive
from convlens import config as cfgmod
from convlens.config import ConfigError

keras = pytest.importorskip("keras")

from convlens.core.layers import conv_layers, iter_layers  # noqa: E402 (needs Keras)


def sequential():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="logits"),
            keras.layers.Softmax(name="probs"),  # the width comes from the Dense before it
        ]
    )


def functional():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def nested():
    """A transfer-style model: a keras.applications base (random weights) inside a Functional model."""
    base = keras.applications.MobileNetV2(input_shape=(48, 48, 3), include_top=False, weights=None)
    inputs = keras.Input((48, 48, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(base(inputs))
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(x))


def dense_only():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    models = {"seq": sequential(), "fun": functional(), "nested": nested(), "dense": dense_only()}
    models["app"] = keras.applications.MobileNetV2(input_shape=(48, 48, 3), weights=None, classes=7)
    for name, model in models.items():
        model.save(folder / f"{name}.keras")
    return folder, models


@pytest.mark.parametrize("name", ["seq", "fun", "nested", "dense", "app"])
def test_facts_match_the_keras_model(saved, name):
    folder, models = saved
    model = models[name]
    found = archive.facts(folder / f"{name}.keras")
    # every layer path convlens.core.layers gives (the independent answer: Keras itself) is known
    assert {p for p, _ in iter_layers(model)} <= set(found.layers)
    assert found.input_shape == [int(d) for d in model.inputs[0].shape[1:]]
    assert found.outputs == int(model.outputs[0].shape[-1])
    assert found.has_conv == bool(conv_layers(model))


def test_nested_layers_have_outer_slash_inner_paths(saved):
    folder, models = saved
    found = archive.facts(folder / "nested.keras")
    inner = models["nested"].layers[1].name
    assert f"{inner}/Conv1" in found.layers and "head" in found.layers and found.outputs == 5


def base_config(path, **model):
    return {
        "datasets": {"d": {"kind": "shapes"}},
        "models": {"m": {"source": "load", "path": str(path), **model}},
        "images": [{"dataset": "d", "count": 2}],
    }


@pytest.mark.parametrize(
    "file,model,edit,expected",
    [
        (
            "seq",
            {"class_names": ["a", "b", "c"]},
            None,
            "config.models.m.class_names: 3 names for a model with 10 outputs",
        ),
        (
            "seq",
            {"heatmap_layer": "gapp"},
            None,
            "config.models.m.heatmap_layer: layer 'gapp' is not in model m (did you mean 'gap'?)",
        ),
        (
            "fun",
            {"sheet_layers": ["conv_a", "nope"]},
            None,
            "config.models.m.sheet_layers: layer 'nope' is not in model m",
        ),
        ("fun", {"plot_layers": ["conv_b"]}, None, "config.models.m.plot_layers: layer 'conv_b' is not in model m"),
        ("fun", {"filter_layers": ["flatt"]}, None, "config.models.m.filter_layers: layer 'flatt' is not in model m"),
        (
            "fun",
            {},
            lambda c: c.update(heatmaps={"layer": "conv"}),
            "config.heatmaps.layer: layer 'conv' is not in model m",
        ),
        (
            "fun",
            {},
            lambda c: c.update(filters={"layers": ["x"]}),
            "config.filters.layers: layer 'x' is not in model m",
        ),
        (
            "fun",
            {},
            lambda c: c.update(report={"sheet_layers": ["x"]}),
            "config.report.sheet_layers: layer 'x' is not in",
        ),
        ("nested", {"heatmap_layer": "Conv1"}, None, "config.models.m.heatmap_layer: layer 'Conv1' is not in model m"),
        ("dense", {}, None, "config.models.m.path: '{path}' has no convolution layer"),
        (
            "fun",
            {},
            lambda c: c.update(comparison={"layers": {"m": {"conv_aa": "conv_a"}}}),
            "config.comparison.layers.m: layer 'conv_aa' is not in model m (did you mean 'conv_a'?)",
        ),
        (
            "fun",
            {},
            lambda c: c.update(comparison={"layers": {"m": {"conv_a": "conv_x"}}}),
            "config.comparison.layers: layer 'conv_x' is not in model m",
        ),
    ],
)
def test_model_dependent_mistakes_are_refused_at_config_time(saved, file, model, edit, expected):
    folder, _ = saved
    path = folder / f"{file}.keras"
    cfg = base_config(path, **model)
    if edit:
        edit(cfg)
    with pytest.raises(ConfigError) as error:
        cfgmod.validate(cfg)
    message = str(error.value)
    assert expected.format(path=path) in message and "\n" not in message


def test_fitting_names_pass_and_nested_paths_are_accepted(saved):
    folder, _ = saved
    cfgmod.validate(base_config(folder / "seq.keras", class_names=list("abcdefghij"), heatmap_layer="c1"))
    inner = next(p for p in archive.facts(folder / "nested.keras").layers if p.endswith("/Conv1"))
    cfgmod.validate(base_config(folder / "nested.keras", heatmap_layer=inner, sheet_layers=[inner]))


def test_an_input_that_is_not_one_fixed_size_image_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3), keras.layers.Dense(2)])
    model.save(tmp_path / "any_size.keras")
    with pytest.raises(ConfigError, match=r"config.models.m.path: .* takes input shape \[None, None, 3\]; allowed: "):
        cfgmod.validate(base_config(tmp_path / "any_size.keras"))


def test_a_hand_written_config_json_is_read_without_keras(tmp_path):
    """The known answer: a config.json written by hand (Keras 3 layout) gives exactly its facts."""
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 9, 7, 2]}},
                {"class_name": "SeparableConv2D", "config": {"name": "sep"}},
                {"class_name": "Dense", "config": {"name": "d", "units": 4}},
                {"class_name": "Activation", "config": {"name": "act"}},
            ]
        },
    }
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
    facts = archive.facts(tmp_path / "m.keras")
    assert facts.layers == ["in", "sep", "d", "act"] and facts.input_shape == [9, 7, 2]
    assert facts.outputs == 4 and facts.has_conv


def test_an_h5_model_file_is_read_with_h5py_and_a_weights_file_says_nothing(tmp_path):
    pytest.importorskip("h5py")
    model = sequential()
    model.save(tmp_path / "legacy.h5")
    found = archive.facts(tmp_path / "legacy.h5")
    assert {p for p, _ in iter_layers(model)} <= set(found.layers)
    assert found.input_shape == [28, 28, 1] and found.outputs == 10 and found.has_conv
    with pytest.raises(ConfigError, match=r"^config.models.m.class_names: 2 names for a model with 10 outputs"):
        cfgmod.validate(base_config(tmp_path / "legacy.h5", class_names=["a", "b"]))
    model.save_weights(tmp_path / "only.weights.h5")
    assert archive.facts(tmp_path / "only.weights.h5") is None  # no model_config: load_model decides
