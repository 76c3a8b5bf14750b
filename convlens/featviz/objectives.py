"""What feature visualization maximizes: a channel, a neuron or a class logit, before activation."""

from __future__ import annotations

import numpy as np

from convlens.core.graph import build_probe, pre_activation_probe
from convlens.core.head import Head, preprocess
from convlens.errors import InputError

OBJECTIVES = ("channel", "neuron", "class")


_BORDER = 2  # border left out of the channel mean, for maps larger than _BORDER_MIN x _BORDER_MIN


_BORDER_MIN = 8


def objective_fn(
    model, layer_path: str | None, input_shape: tuple[int, int, int], preprocess_mode: str, objective: str
):
    """A function (images (N, H, W, C) in [0, 1], index (N,) int) -> (N,) objective values."""
    import keras
    import tensorflow as tf

    own_shape = tuple(int(s) for s in model.inputs[0].shape[1:])
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    if objective == "class":
        if layer_path is not None:
            raise ValueError("the class objective takes layer_path=None (channels are class indices)")
        if tuple(input_shape) != own_shape:
            raise InputError(f"the class objective needs the model's own input size {own_shape}, not {input_shape}")
        probe = build_probe(model, [], None)
        head = Head(model)

        def class_logit(x, index):
            _, pre, out = probe(preprocess(x, preprocess_mode), training=False)
            logits, _ = head.logits_and_probs(pre, out)
            return tf.gather(logits, index, batch_dims=1)

        return class_logit

    if layer_path is None:
        raise ValueError(f"the {objective} objective needs a layer_path")
    probe, response = pre_activation_probe(model, layer_path, input_shape, f"use the model's input size {own_shape}")

    def unit_value(x, index):
        outs = probe(preprocess(x, preprocess_mode), training=False)
        act = response(outs[-1] if isinstance(outs, (list, tuple)) else outs)
        if len(act.shape) == 4 and objective == "channel":
            if act.shape[1] > _BORDER_MIN and act.shape[2] > _BORDER_MIN:  # padding dominates the border
                act = act[:, _BORDER:-_BORDER, _BORDER:-_BORDER, :]
            act = keras.ops.mean(act, axis=(1, 2))
        elif len(act.shape) == 4:
            act = act[:, act.shape[1] // 2, act.shape[2] // 2, :]
        elif len(act.shape) != 2:
            raise InputError(
                f"layer {layer_path!r} outputs shape {tuple(act.shape)}; objectives need (B, h, w, c) or (B, units)"
            )
        return tf.gather(act, index, batch_dims=1)

    return unit_value


def evaluate(fn, images: np.ndarray, channels, batch_size: int = 64) -> np.ndarray:
    index = np.asarray(channels, dtype="int32")
    images = np.asarray(images, dtype="float32")
    return np.concatenate(
        [
            np.asarray(fn(images[i : i + batch_size], index[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
    )


def objective_values(
    model,
    layer_path: str | None,
    channels: list[int],
    images: np.ndarray,
    preprocess_mode: str,
    objective: str = "channel",
) -> np.ndarray:
    """The objective of ``channels[i]`` on ``images[i]`` (N, H, W, C) in [0, 1], as visualize defines it."""
    fn = objective_fn(model, layer_path, tuple(np.shape(images)[1:]), preprocess_mode, objective)
    return evaluate(fn, images, channels)
