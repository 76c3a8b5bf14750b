"""The CAM family: ReLU(sum_k w_k A_k) at the CAM layer, bilinearly upsampled.

Variants state only the weights w: the dense layer's class weights (CAM), functions of the
gradient (Grad-CAM, Grad-CAM++, Layer-CAM) or the score of the image masked by each channel
(Score-CAM). Guided Grad-CAM multiplies guided backpropagation by the Grad-CAM map.
"""

from __future__ import annotations

import numpy as np

from convlens.attribution.base import REDUCE, Look, Method, MethodResult, Param, pixel_result, whole
from convlens.attribution.perturbations import ChannelMasks, Stack, upsample
from convlens.core.layers import find_layer, iter_layers
from convlens.errors import InputError


def weighted_map(weights, activations):
    """ReLU(sum_k w_k A_k): the map every CAM method makes. weights broadcast to (B, h, w, c)."""
    import keras

    return keras.ops.relu(keras.ops.sum(weights * activations, axis=-1))


class CamFamily(Method):
    """A CAM method: ReLU(sum_k w_k A_k) at the CAM layer, its weights from ``weights`` (made in the
    Explainer's one pass for the whole family) or, when ``weights`` is None, by ``run`` itself."""

    uses_cam_layer = True
    applies_to = "a CAM layer with spatial maps"

    @staticmethod
    def weights(activations, gradients, class_weights):
        """(B, 1, 1, c) or (B, h, w, c) weights for ReLU(sum_k w_k A_k)."""
        raise NotImplementedError

    def run(self, context):
        raw, maps = context.cams()[self.name]
        return MethodResult(maps, raw)


class ClassActivationMap(CamFamily):
    """CAM (Zhou et al. 2016): the class's weights in the dense layer that follows global average
    pooling of the CAM layer. Needs CAM layer -> global average pooling -> dense (the CAM layer
    must be the one that is pooled). Uses the logit whatever ``score`` says."""

    name = "cam"
    look = Look("CAM", "#CC79A7")
    reference = "Zhou et al. 2016"
    cost = "free (dense weights)"
    applies_to = "CAM layer -> global average pooling -> one dense layer (`all` leaves it out elsewhere, with a note)"

    def prepare(self, model, cam_layer):
        return cam_dense(model, cam_layer)

    @staticmethod
    def weights(activations, gradients, class_weights):
        return class_weights[:, None, None, :]


class GradCAM(CamFamily):
    """Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of d score / d A_k. The one
    Grad-CAM of convlens: the sheets, the study and the method check all take it from here."""

    name = "gradcam"
    look = Look("Grad-CAM", "#D55E00")
    reference = "Selvaraju et al. 2017"
    cost = "computed with the activations in the analysis step"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        return keras.ops.mean(gradients, axis=(1, 2), keepdims=True)


SHEET_METHOD = GradCAM.name  # the map the comparison sheets overlay on every transformed input


class GradCAMPlusPlus(CamFamily):
    """Grad-CAM++ (Chattopadhay et al. 2018): w_k = sum_ij alpha_kij ReLU(g_kij) with
    alpha = g^2 / (2 g^2 + sum_ab A_kab g^3), g = d score / d A: the paper's closed form for an
    exponential of the score (its positive factor exp(S) is left out; it does not change the map).
    """

    name = "gradcam_pp"
    look = Look("Grad-CAM++", "#E69F00")
    reference = "Chattopadhay et al. 2018"
    cost = "1 backward pass, shared by the CAM family"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        ops = keras.ops
        g2 = ops.square(gradients)
        denominator = 2.0 * g2 + ops.sum(activations, axis=(1, 2), keepdims=True) * g2 * gradients
        alpha = g2 / ops.where(denominator != 0.0, denominator, ops.ones_like(denominator))
        return ops.sum(alpha * ops.relu(gradients), axis=(1, 2), keepdims=True)


class LayerCAM(CamFamily):
    """Layer-CAM (Jiang et al. 2021): a weight per position and channel, ReLU(d score / d A)."""

    name = "layercam"
    look = Look("Layer-CAM", "#AA4499")
    reference = "Jiang et al. 2021"
    cost = "shared with the CAM family"

    @staticmethod
    def weights(activations, gradients, class_weights):
        import keras

        return keras.ops.relu(gradients)


class ScoreCAM(CamFamily):
    """Score-CAM (Wang et al. 2020): channel weight = p_c(x * H_k) - p_c(black), where H_k is
    channel k upsampled and scaled to [0, 1] and p_c the class probability (the paper's "increase
    of confidence"). One forward pass per channel that is not constant: at most ``channel_batch``
    masked images per pass.
    """

    name = "scorecam"
    params = {"channel_batch": Param(None, whole(1, "batch_size"))}
    look = Look("Score-CAM", "#882255")
    reference = "Wang et al. 2020"
    cost = "one forward pass per non-constant channel of the CAM layer"
    weights = None  # from forward passes, not from the gradient
    CHANNELS_GUESS = 256  # the CAM layer's channels are not known before the model is: a typical count

    def passes(self, params, side):
        return float(self.CHANNELS_GUESS + 1)

    def run(self, context):
        explainer, x, targets = context.explainer, context.x, context.targets
        activations = context.cams()["activations"]
        # a constant channel masks the image to black: its weight is exactly 0, no pass needed
        varies = activations.max(axis=(1, 2)) > activations.min(axis=(1, 2))  # (B, c)
        channels = np.flatnonzero(varies.any(axis=0))
        weights = np.zeros(varies.shape, np.float32)
        if channels.size:
            masked = explainer.scores(
                ChannelMasks(x, activations[..., channels]),
                targets,
                "probability",
                max_rows=context.params(self)["channel_batch"],
            )
            black = explainer.scores(Stack([np.zeros_like(x)]), targets, "probability")
            weights[:, channels] = np.where(varies[:, channels], masked - black, 0.0)
        raw = np.asarray(weighted_map(weights[:, None, None, :], activations))
        return MethodResult(np.asarray(upsample(raw, x.shape[1:3])), raw)


class GuidedGradCAM(Method):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation times the upsampled Grad-CAM
    map, pixel by pixel. raw: (B, H, W, C)."""

    name = "guided_gradcam"
    params = {"reduce": Param("abs_max", REDUCE)}
    look = Look("Guided Grad-CAM", "#000000")
    reference = "Selvaraju et al. 2017"
    cost = "guided backprop × Grad-CAM"
    applies_to = CamFamily.applies_to
    requires = ("gradcam", "guided_backprop")
    uses_cam_layer = True

    def run(self, context):
        raw = context.result("guided_backprop").raw * context.result("gradcam").maps[..., None]
        return pixel_result(raw, context.params(self)["reduce"])


def cam_dense(model, cam_layer: str):
    """CAM's dense layer (its kernel holds the class weights); InputError unless CAM layer -> GAP -> dense."""
    import keras

    layers = list(iter_layers(model))
    after = [layer for _, layer in layers[[p for p, _ in layers].index(cam_layer) + 1 :]]
    pools = [layer for layer in after if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    dense = [layer for layer in after if isinstance(layer, keras.layers.Dense)]
    neutral = (keras.layers.GlobalAveragePooling2D, keras.layers.Dense, keras.layers.Dropout, keras.layers.Softmax)
    others = [
        layer
        for layer in after
        if not isinstance(layer, neutral)
        and not (
            isinstance(layer, keras.layers.Activation)
            and layer.activation in (keras.activations.softmax, keras.activations.linear)
        )
    ]
    channels = find_layer(model, cam_layer).output.shape[-1]
    if len(pools) != 1 or len(dense) != 1 or others or dense[0].kernel.shape[0] != channels:
        raise InputError(
            f"cam: CAM (Zhou et al. 2016) needs the CAM layer {cam_layer!r} followed only by global "
            f"average pooling and one dense layer; set the CAM layer to the pooled one or drop 'cam'"
        )
    return dense[0]
