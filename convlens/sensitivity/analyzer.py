"""The batched model step of the study: feature maps, class scores and the equivariance sums of a
whole batch in one compiled call."""

from __future__ import annotations

import numpy as np

from convlens.core.graph import build_probe
from convlens.core.head import TARGET_REFERENCE, Head, preprocess, resolve_targets
from convlens.sensitivity import cka, photometric
from convlens.transform_kinds import REGISTRY
from convlens.transforms import keras_transform_vector


def equivariance_sums(acts, samplers, group: int):
    """Inside a compiled step: what the layer metrics need of image-major maps (B = images × group).

    acts: per layer (B, h, w, c) tensors, row 0 of each group the reference; samplers: per layer,
    per transform, ``transforms.Sampler`` (T_l as gathers over the valid pixels). Returns per layer
    num (B,) = ‖V⊙(φ(Tx) − T_l φ(x))‖², den (B,) = ‖V⊙T_l φ(x)‖² and pooled (B, c), the global
    average. Only the valid pixels are read, and warps that keep pixel centres on pixel centres
    are exact single gathers (the identity row gives num = 0 exactly).
    """
    out = layer_sums(acts, samplers, group)
    return out["num"], out["den"], out["pooled"]


def layer_sums(acts, samplers, group: int, pair=None) -> dict:
    """``equivariance_sums`` as a dict (num, den, pooled) and, with ``pair``, more sums from the same
    gathers: ``pair(layer index, transform index, expected, got)`` -> {key: (n,)} with expected
    = T_l φ(x) and got = φ(Tx) at the valid pixels, (n, P, c) for the n images; each key comes back
    per layer (B,) like num (the ladder's rungs: one gather of the expected map serves them all)."""
    import tensorflow as tf

    def read(values, index):  # values[:, index]; every pixel in order needs no gather
        if len(index) == values.shape[1] and np.array_equal(index, np.arange(len(index))):
            return values
        return tf.gather(values, index, axis=1)

    def weighted(values, weights):
        return values if np.all(weights == 1) else values * weights[None, :, None]

    out = {"num": [], "den": [], "pooled": []}
    for j, (a, layer_samplers) in enumerate(zip(acts, samplers, strict=False)):
        h, w, c = a.shape[1], a.shape[2], a.shape[3]
        flat = tf.reshape(tf.cast(a, tf.float32), (-1, group, h * w, c))
        reference = flat[:, 0]
        per: dict = {"num": [], "den": []}
        for t, s in enumerate(layer_samplers):
            expected = tf.add_n(
                [weighted(read(reference, index), weights) for index, weights in zip(s.index, s.weights, strict=False)]
            )
            got = read(flat[:, t], s.positions)
            per["num"].append(tf.reduce_sum(tf.square(got - expected), axis=[1, 2]))
            per["den"].append(tf.reduce_sum(tf.square(expected), axis=[1, 2]))
            for key, value in (pair(j, t, expected, got) if pair is not None else {}).items():
                per.setdefault(key, []).append(value)
        for key, values in per.items():
            out.setdefault(key, []).append(tf.reshape(tf.stack(values, axis=1), (-1,)))
        out["pooled"].append(tf.reduce_mean(tf.cast(a, tf.float32), axis=[1, 2]))
    return out


def tiled_warp(images, vectors_per_image, wrap_rows: np.ndarray, fill_mode: str, fill_value: float):
    """Inside a compiled step: image-major rows warped by the (T, 8) keras vectors, tiled over the images;
    rows whose ``wrap_rows`` (T,) is set (circular shifts) read with ``wrap`` fill, the others with ``fill_mode``."""
    import keras
    import tensorflow as tf

    n = tf.shape(images)[0] // vectors_per_image.shape[0]

    def call(mode):
        return keras.ops.image.affine_transform(
            images,
            tf.tile(vectors_per_image, [n, 1]),
            interpolation="bilinear",
            fill_mode=mode,
            fill_value=fill_value,
            data_format="channels_last",
        )

    if not wrap_rows.any() or fill_mode == "wrap":
        return call(fill_mode)
    return tf.where(tf.tile(tf.constant(wrap_rows), [n])[:, None, None, None], call("wrap"), call(fill_mode))


def step_sums(acts, samplers, group: int, ladder=None) -> dict:
    """num, den and pooled (``equivariance_sums``) and, with a ``sensitivity.ladder.Ladder``, its
    rungs' numerators num_<rung> (per layer (B,)), from the same gathers as num (``layer_sums``)."""
    return layer_sums(acts, samplers, group, ladder.pair_sums if ladder is not None else None)


class Analyzer:
    """Activations of chosen layers, logits and probabilities for a batch, in one compiled call.

    The batch is laid out image-major: ``group`` consecutive rows are the transforms of one image,
    the first being the untransformed reference. Heatmaps come from the attribution package's
    Explainer; given ``explainer``, the step also takes the gradient of each row's score at the
    Explainer's CAM layer and makes the CAM family's maps with ``explainer.cam_maps`` (the one place
    they are made), so Grad-CAM costs a backward pass here instead of a pass of its own. With
    ``reference_too`` it makes them for each image's reference class as well.
    """

    def __init__(
        self,
        model,
        layer_paths: list[str],
        preprocess_mode: str,
        samplers: list | None = None,
        warps=None,
        maps: bool = True,
        explainer=None,
        reference_too: bool = False,
        cka_images: int | None = None,
        ladder=None,
    ):
        """``ladder``: a ``sensitivity.ladder.Ladder``; the step adds its rungs' numerators (num_<rung>)."""
        import tensorflow as tf

        self.layer_paths = list(layer_paths)
        self.probe = build_probe(model, self.layer_paths, explainer.cam_layer if explainer is not None else None)
        self.head = Head(model)
        self.preprocess_mode = preprocess_mode
        self.warps = warps
        # per transform: None for a warp, (kind, params) for a photometric transform's pixel operation
        self.pixel_ops = [(t.kind, t.params) if t.photometric else None for t in warps.transforms] if warps else []
        self.seeded = [op[0] for op in self.pixel_ops if op is not None and REGISTRY[op[0]].seeded]
        self.needs_seeds = bool(self.seeded)
        if warps is not None:
            forward = [keras_transform_vector(m) for m in warps.matrices]
            inverse = [keras_transform_vector(m) for m in warps.back_matrices]
            vectors = tf.constant(np.stack(forward), tf.float32), tf.constant(np.stack(inverse), tf.float32)
            geometric = [f for f, op in zip(forward, self.pixel_ops, strict=False) if op is None]
            geometric_vectors = tf.constant(np.stack(geometric), tf.float32)

            wraps = np.array([t.wraps for t in warps.transforms], bool)  # circular shifts read with wrap
            geometric_wraps = wraps[[op is None for op in self.pixel_ops]]

        def warp(images, vectors_per_image, wrap_rows):
            return tiled_warp(images, vectors_per_image, wrap_rows, warps.fill_mode, warps.fill_value)

        def transform(images, seeds):
            """Every transform of each image, image-major (n * T rows): warps in one call, then each
            photometric transform's pixel operation on the whole batch of originals."""
            if not any(self.pixel_ops):
                return warp(tf.repeat(images, len(self.pixel_ops), axis=0), vectors[0], wraps)
            shape = tf.shape(images)
            warped = warp(tf.repeat(images, len(geometric), axis=0), geometric_vectors, geometric_wraps)
            warped = tf.reshape(warped, tf.concat([[-1, len(geometric)], shape[1:]], 0))
            field = photometric.noise_field(images, seeds) if self.needs_seeds else None
            rows, g = [], 0
            for op in self.pixel_ops:
                if op is None:
                    rows.append(warped[:, g])
                    g += 1
                else:
                    rows.append(photometric.apply(op[0], op[1], images, field))
            return tf.reshape(tf.stack(rows, axis=1), tf.concat([[-1], shape[1:]], 0))

        def step(x, group, codes, seeds):
            import keras

            result = {}
            if warps is not None:  # x holds the untransformed images: every transform of each, image-major
                x = transform(x, seeds)
                result["inputs"], result["back"] = x, warp(x, vectors[1], wraps)
            with tf.GradientTape(persistent=reference_too) as tape:
                outs = self.probe(preprocess(x, self.preprocess_mode), training=False)
                acts, cam_act, pre, out = outs[:-3], outs[-3], outs[-2], outs[-1]
                logits, probs = self.head.logits_and_probs(pre, out)
                if explainer is not None:
                    wanted = {"": resolve_targets(logits, codes, group)}
                    if reference_too:
                        wanted["_reference"] = resolve_targets(
                            logits, tf.fill(tf.shape(codes), TARGET_REFERENCE), group
                        )
                    chosen = {k: explainer.chosen(logits, probs, t) for k, t in wanted.items()}
            if explainer is not None:
                for k, t in wanted.items():
                    result["target" + k] = t
                    result["cam_activations"], result["cams" + k] = explainer.cam_maps(
                        cam_act, tape.gradient(chosen[k], cam_act), t, keras.ops.shape(x)[1:3]
                    )
            result.update({"logits": logits, "probs": tf.cast(probs, tf.float32)})
            if maps:  # the full maps leave the device only when asked for (drawing, not measuring)
                result["activations"] = [tf.cast(a, tf.float32) for a in acts]
            if samplers is not None:
                result.update(step_sums(acts, samplers, group, ladder))
            result.update(cka.step_outputs(acts, group, cka_images))  # grams, with cka_images
            return result

        self._step = tf.function(
            step, reduce_retracing=True, autograph=False
        )  # plain Python control flow: no conversion needed

    def run(self, x: np.ndarray, group: int, target_code: int = TARGET_REFERENCE, seeds=None) -> dict:
        """x: (B, H, W, C) float32 pixels in [0, 1], B a multiple of ``group``; with ``warps`` (a
        ``sensitivity.metrics.Study``: transforms, matrices, back_matrices, fill_mode, fill_value) x holds
        the untransformed images, and the step transforms each by every transform first (B = len(x) * T):
        warps, or a photometric transform's pixel operation (``sensitivity.photometric``) in [0, 1]
        pixels before the model's preprocessing. ``seeds`` (len(x),): each image's noise seed
        (``photometric.image_seeds``), needed when a transform's kind is ``seeded`` (noise).

        Returns numpy arrays: activations (list of (B, h, w, c); unless ``maps`` is False), logits and
        probs (B, K); with
        ``samplers`` also num, den and pooled (see ``equivariance_sums``); with ``warps`` also
        inputs (the warped images) and back (those warped back by the inverse transforms); with
        ``explainer`` also target (B,) (``target_code`` resolved: a class or a TARGET_ code),
        cam_activations and cams ({name: (raw, maps)}), and target_reference and cams_reference with
        ``reference_too``; with ``cka_images`` also grams (per layer (blocks, group, b, b),
        ``cka.block_grams``).
        """
        import tensorflow as tf

        if seeds is None:
            if self.needs_seeds:
                raise ValueError(f"the {self.seeded[0]} transform needs a seed per image (photometric.image_seeds)")
            seeds = np.zeros(len(x), np.int64)
        rows = len(x) * (len(self.warps.matrices) if self.warps is not None else 1)
        out = self._step(
            np.asarray(x, "float32"), int(group), np.full(rows, target_code, np.int64), np.asarray(seeds, np.int64)
        )
        return tf.nest.map_structure(np.asarray, out)
