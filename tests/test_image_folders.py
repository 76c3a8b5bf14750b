"""Image folders: labels from class subfolders and labels.csv, ids that keep the file names, and the
one-line errors for a bad labels.csv or a class the model does not have."""

import numpy as np
import pytest
from PIL import Image

from convlens import config as cfgmod
from convlens.config import ConfigError
from convlens.errors import InputError
from convlens.image_folders import check_labels, folder_images

LOADED = {"source": "load", "path": "m.keras", "class_names": ["cat", "dog"]}
SHAPES = {"d": {"kind": "shapes"}}
TRAINED = {"t": {"source": "train", "architecture": "shapes_cnn", "dataset": "d"}}


def png(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((8, 8, 3)) * 255).astype(np.uint8)).save(path)


def test_class_subfolders_label_their_images_and_ids_keep_the_file_names(tmp_path):
    for i, rel in enumerate(("cat/tabby.png", "cat/siamese.jpg", "dog/rex.png", "loose.png")):
        png(tmp_path / "photos" / rel, i)
    (tmp_path / "photos" / "notes").mkdir()
    (tmp_path / "photos" / "notes" / "readme.txt").write_text("not an image")
    found = folder_images("photos", tmp_path)
    assert [(f.id, f.label, f.path) for f in found] == [
        ("siamese", "cat", "photos/cat/siamese.jpg"),
        ("tabby", "cat", "photos/cat/tabby.png"),
        ("rex", "dog", "photos/dog/rex.png"),
        ("loose", None, "photos/loose.png"),
    ]
    entries = cfgmod.list_images({"images": [{"folder": "photos"}], "models": {"m": LOADED}}, tmp_path)
    assert [(e.id, e.label) for e in entries] == [("siamese", "cat"), ("tabby", "cat"), ("rex", "dog"), ("loose", None)]


def test_a_labels_csv_labels_the_files_it_lists(tmp_path):
    for i, name in enumerate(("a one.png", "b.png", "c.png")):
        png(tmp_path / "photos" / name, i)
    (tmp_path / "photos" / "labels.csv").write_text("file,class\na one.png,dog\nb.png,cat\nc.png,\n")
    found = folder_images("photos", tmp_path)
    assert [(f.id, f.label, f.label_source) for f in found] == [
        ("a_one", "dog", "photos/labels.csv"),
        ("b", "cat", "photos/labels.csv"),
        ("c", None, None),  # an empty class: no label
    ]


def test_the_same_file_name_in_two_class_folders_gets_its_class_as_prefix(tmp_path):
    for i, rel in enumerate(("cat/001.png", "dog/001.png", "dog/002.png")):
        png(tmp_path / "photos" / rel, i)
    assert [f.id for f in folder_images("photos", tmp_path)] == ["cat_001", "dog_001", "002"]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("file,label\nx.png,cat\n", r"photos/labels.csv: needs the columns file and class \(found: file, label\)"),
        (
            "file,class\nxx.png,cat\n",
            r"photos/labels.csv: line 2 names 'xx.png', not an image in the folder \(did you mean 'x.png'\?\)",
        ),
        ("file,class\nx.png,cat\nx.png,dog\n", r"photos/labels.csv: line 3 names 'x.png' a second time"),
    ],
)
def test_a_bad_labels_csv_is_a_one_line_error_naming_it(tmp_path, csv, message):
    png(tmp_path / "photos" / "x.png")
    png(tmp_path / "photos" / "cat" / "y.png")
    (tmp_path / "photos" / "labels.csv").write_text(csv)
    with pytest.raises(InputError, match=message) as info:
        folder_images("photos", tmp_path)
    assert "\n" not in str(info.value)
    config = {"datasets": SHAPES, "models": TRAINED, "images": [{"folder": "photos"}]}
    with pytest.raises(ConfigError, match=r"^config.images\[0\].folder: photos/labels.csv: "):
        cfgmod.validate(config, base_dir=tmp_path)


def test_a_class_the_model_does_not_have_is_a_one_line_error_with_did_you_mean(tmp_path):
    png(tmp_path / "photos" / "cat" / "tabby.png")
    png(tmp_path / "photos" / "dogs" / "rex.png")
    cfg = {"images": [{"folder": "photos"}], "models": {"m": LOADED}}
    with pytest.raises(
        ConfigError,
        match=r"^photos/dogs/rex.png: class 'dogs' \(from photos/dogs/\) is not a class of model m "
        r"\(did you mean 'dog'\?\); its classes: cat, dog$",
    ):
        cfgmod.list_images(cfg, tmp_path)
    # a model whose classes the config does not tell: the measure step checks (check_labels)
    unknown = {"m": {"source": "load", "path": "m.keras"}}
    entries = cfgmod.list_images({"images": [{"folder": "photos"}], "models": unknown}, tmp_path)
    params = [{"id": e.id, "path": e.path, "label": e.label, "label_source": e.label_source} for e in entries]
    check_labels(params[:1], ["cat", "dog"], "m")
    with pytest.raises(InputError, match=r"photos/dogs/rex.png: class 'dogs' .* \(did you mean 'dog'\?\)"):
        check_labels(params, ["cat", "dog"], "m")
    # trained on shapes: the classes are the dataset's
    with pytest.raises(
        ConfigError, match=r"class 'cat' .* is not a class of model t; its classes: circle, square, tri"
    ):
        cfgmod.list_images({"images": [{"folder": "photos"}], "models": TRAINED, "datasets": SHAPES}, tmp_path)


def test_a_labels_csv_decides_and_subfolders_are_then_only_places(tmp_path):
    """Subfolders that are not classes (batches, dates): a labels.csv, even with no row, turns the
    subfolder labels off; the files it lists get its classes, the others none."""
    png(tmp_path / "photos" / "batch1" / "x.png")
    png(tmp_path / "photos" / "batch2" / "y.png", 1)
    (tmp_path / "photos" / "labels.csv").write_text("file,class\nbatch1/x.png,dog\n")
    found = {f.id: (f.label, f.label_source) for f in folder_images("photos", tmp_path)}
    assert found == {"x": ("dog", "photos/labels.csv"), "y": (None, None)}
    (tmp_path / "photos" / "labels.csv").write_text("file,class\n")
    assert [f.label for f in folder_images("photos", tmp_path)] == [None, None]
    (tmp_path / "photos" / "labels.csv").unlink()  # no labels.csv: the subfolders are the classes
    assert [f.label for f in folder_images("photos", tmp_path)] == ["batch1", "batch2"]
