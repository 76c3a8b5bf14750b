"""Regularized feature visualization: images that maximize a unit, kept natural-looking.

After Olah, Mordvintsev & Schubert, "Feature Visualization" (Distill 2017) and Mordvintsev et al.,
"Differentiable Image Parameterizations" (Distill 2018). The plain filter patterns of
the report are one preset of it (``PRESETS["plain"]``: gradient ascent on raw pixels); otherwise the
image is

- *parameterized* (``param``): ``pixel`` = sigmoid of free per-pixel values; ``fourier`` = a real
  2-D spectrum per channel scaled by 1/f, inverse FFT, colour decorrelation with Lucid's ImageNet
  colour matrix (3-channel images only), then a sigmoid. Both keep pixels in (0, 1), and
  Parameterization.image_to_params is the exact inverse of params_to_image;
- made *robust to transformations*: each step the objective is taken on a randomly jittered
  (reflect-pad + crop, ``jitter`` px), scaled (a factor from ``scales``) and rotated
  (uniform in +-``rotate_deg``) copy. One draw per step, shared by the whole batch, so each
  image's path depends only on its own start and the seed;
- *penalized*: total variation (``tv_weight``), and a Gaussian blur (``blur_sigma``) of the image
  every ``blur_every`` steps.

Objectives, all before the unit's activation function (a silent ReLU unit still has a gradient):

- ``channel``: mean pre-activation of channel c of ``layer_path`` (the 2-pixel border left out of
  maps larger than 8x8, where padding dominates);
- ``neuron``: the pre-activation of channel c at the centre position (h // 2, w // 2);
- ``class``: the logit of class c before the softmax (core.head.Head); ``layer_path`` is None.
For a layer with flat (B, units) output, ``channel`` and ``neuron`` are both unit c.

API::

    visualize(model, layer_path, channels, input_shape=None, preprocess_mode="unit",
              objective="channel", param="fourier", steps=256, lr=0.05, optimizer="adam",
              jitter=4, scales=DEFAULT_SCALES, rotate_deg=5.0, tv_weight=0.0,
              blur_every=0, blur_sigma=0.5, seed=0) -> dict
        # {"images": (N, H, W, C) in (0, 1), "objective": (N,) on the final un-transformed images,
        #  "objective_start": (N,) on the start images}
    objective_values(model, layer_path, channels, images, preprocess_mode, objective="channel")
        -> (N,) np.ndarray
    Parameterization(kind, image_shape).params_to_image(params) / .image_to_params(images)

All channels are optimized as one batch in one compiled step. ``input_shape`` other than the
model's own works for channel/neuron objectives when every layer up to ``layer_path`` is
convolutional (see core.graph.build_probe); nested models are descended into.
"""

from convlens.featviz.objectives import OBJECTIVES, objective_values
from convlens.featviz.params import PARAMETERIZATIONS, Parameterization
from convlens.featviz.visualize import DEFAULT_SCALES, OPTIMIZERS, PRESETS, start_images, visualize

__all__ = [
    "DEFAULT_SCALES",
    "OBJECTIVES",
    "OPTIMIZERS",
    "PARAMETERIZATIONS",
    "PRESETS",
    "Parameterization",
    "objective_values",
    "start_images",
    "visualize",
]
