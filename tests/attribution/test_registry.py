"""How every method appears: a human display name and one fixed colour, distinct from every other."""

import itertools

import numpy as np
from skimage.color import rgb2lab

from convlens.attribution.registry import METHODS, UNREGISTERED_COLOUR, display_name, method_colour


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])


def test_every_method_has_a_human_name_and_a_colour():
    assert all(m.look for m in METHODS.values()) and len(METHODS) >= 12
    names = [display_name(m) for m in METHODS]
    assert len(set(names)) == len(names)
    for code, name in zip(METHODS, names, strict=False):
        assert name != code and "_" not in name and name[0].isupper()
    assert display_name("guided_backprop") == "Guided backprop" and display_name("gradcam_pp") == "Grad-CAM++"
    assert display_name("integrated_gradients") == "Integrated Gradients"
    assert display_name("my_method") == "my_method" and method_colour("my_method") == UNREGISTERED_COLOUR


def test_method_colours_are_far_apart_in_cielab_and_from_the_unregistered_grey():
    colours = [method_colour(m) for m in METHODS] + [UNREGISTERED_COLOUR]
    lab = rgb2lab(np.array([[rgb(c) for c in colours]]))[0]
    distances = {
        (a, b): float(np.linalg.norm(lab[i] - lab[j]))
        for (i, a), (j, b) in itertools.combinations(enumerate(colours), 2)
    }
    assert min(distances.values()) > 20, min(distances.items(), key=lambda kv: kv[1])
    white = rgb2lab(np.ones((1, 1, 3)))[0, 0]
    assert all(np.linalg.norm(point - white) > 25 for point in lab)  # visible as lines on white paper
