"""Running a model with its ReLU gradients overridden (guided backpropagation, deconvnet).

Every ReLU runs through ``tf.custom_gradient``: ``keras.layers.ReLU`` layers, ``Activation("relu" /
"relu6")`` layers and layers with a ReLU activation (run as ``core.graph.linear_copy`` followed by
the overridden ReLU). Other activations keep their gradient.
"""

from __future__ import annotations

from convlens.core.graph import linear_copy, trace
from convlens.core.layers import iter_layers

RULES = ("normal", "guided", "deconvnet")  # how a backward pass treats ReLUs


def relu_family():
    import keras

    return (keras.activations.relu, keras.activations.relu6)


def rectified(fn, rule: str):
    """``fn`` (an element-wise ReLU) with its backward pass replaced.

    guided: f'(z) * ReLU(upstream) (Springenberg et al.); deconvnet: ReLU(upstream) (Zeiler & Fergus).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def op(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            y = fn(z)
        slope = tape.gradient(y, z)  # element-wise function: the sum's gradient is f'(z)

        def grad(upstream):
            passed = tf.nn.relu(upstream)
            return passed if rule == "deconvnet" else slope * passed

        return y, grad

    return op


def replay(model, x, call):
    """Run ``model`` on ``x``, every layer through ``call(path, layer, input, *args, **kwargs)``.

    Returns (final output, input of the last layer), descending into nested models
    (``trace`` with the layer call left to the caller).
    """
    return trace(model, x, set(), {}, call=call)


def relu_linear_copies(model) -> dict:
    """{path: linear copy} of the layers with a ReLU activation (made outside compiled graphs)."""
    import keras

    return {
        p: linear_copy(layer)
        for p, layer in iter_layers(model)
        if not isinstance(layer, keras.layers.Activation) and getattr(layer, "activation", None) in relu_family()
    }


def is_relu(path: str, layer, linear_copies: dict) -> bool:
    """True for a ReLU layer, an Activation("relu"/"relu6") layer or a layer with a ReLU activation."""
    import keras

    return (
        path in linear_copies
        or isinstance(layer, keras.layers.ReLU)
        or (isinstance(layer, keras.layers.Activation) and layer.activation in relu_family())
    )
