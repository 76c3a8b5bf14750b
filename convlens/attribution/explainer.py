"""The Explainer: compiled, batched attribution methods for one model (see the package docstring)."""

from __future__ import annotations

import functools

import numpy as np

from convlens.attribution.base import Method, MethodResult, check_params
from convlens.attribution.cams import CamFamily, upsample, weighted_map
from convlens.attribution.perturbations import Perturbation
from convlens.attribution.registry import method as registered
from convlens.attribution.relu import RULES, is_relu, rectified, relu_linear_copies, replay
from convlens.core.head import Head, preprocess, resolve_targets
from convlens.core.layers import check_spatial, iter_layers, last_conv_layer
from convlens.errors import InputError


class Explainer:
    """Compiled attribution methods for one model (see the module docstring).

    methods: registry names (``METHODS``) or Method instances. cam_layer: layer path for the CAM
    family (default: the last convolution). params: {method name: {parameter: value}} over the
    defaults. max_batch: the most images one forward/backward pass gets.

    A method that does not apply to the model (``Method.prepare``) stops the Explainer with an
    InputError (prefixed ``methods_key``), unless its name is in ``optional``: then it is left out
    and ``left_out`` says why. ``cam_layer_key`` names the CAM layer in its error message.
    """

    def __init__(
        self,
        model,
        methods: list,
        preprocess_mode: str = "unit",
        cam_layer: str | None = None,
        score: str = "logit",
        params: dict | None = None,
        max_batch: int = 32,
        *,
        optional=(),
        cam_layer_key: str = "cam_layer",
        methods_key: str = "",
    ):
        import tensorflow as tf

        if score not in ("logit", "probability"):
            raise InputError(f"score: {score!r} is not 'logit' or 'probability'")
        self.model, self.preprocess_mode, self.score = model, preprocess_mode, score
        self.max_batch = max(1, int(max_batch))
        self.methods = [m if isinstance(m, Method) else registered(m) for m in methods]
        self._params = self._check_params(params or {})
        self.head = Head(model)
        self.cam_layer = None
        if any(m.uses_cam_layer for m in self._with_requirements(self.methods)):
            self.cam_layer = cam_layer or last_conv_layer(model)
            check_spatial(model, self.cam_layer, cam_layer_key)
        prepared = self._prepare(set(optional), methods_key)
        needed = self._with_requirements(self.methods)
        self._cam_weighting = {m.name: m.weights for m in needed if isinstance(m, CamFamily) and m.weights is not None}
        # the dense layer holding the class weights, for the method that weighs by them (CAM)
        self.cam_dense = next((prepared[m.name] for m in needed if prepared[m.name] is not None), None)
        self._linear = None  # linear copies of ReLU-activated layers, made when a rule needs them
        # traced once each, for any number of images (a signature with no batch size): without one a
        # second batch size (a job's last, shorter batch) traces the graph again
        images = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        self._signature = (images, tf.TensorSpec((None,), tf.int64))
        self._predict_fn = tf.function(self._predict_graph, input_signature=[images], autograph=False)
        self._gradient_fns: dict = {}  # per ReLU rule (``_gradient_fn``)
        self._cam_fn = tf.function(self._cam_graph, input_signature=self._signature, autograph=False)

    # -- set-up

    def method(self, name: str) -> Method:
        """The Explainer's own method called ``name``, else the registered one."""
        return next((m for m in self.methods if m.name == name), None) or registered(name)

    def _with_requirements(self, methods) -> list[Method]:
        out, todo = {}, list(methods)
        while todo:
            m = todo.pop()
            if m.name not in out:
                out[m.name] = m
                todo += [self.method(r) for r in m.requires]
        return list(out.values())

    def _check_params(self, params: dict) -> dict:
        for name, given in params.items():
            check_params(self.method(name), given, name)
        return dict(params)

    def _prepare(self, optional: set, methods_key: str) -> dict:
        """{name: what ``Method.prepare`` took from the model} for every method needed; a method
        that does not apply (or needs one that does not) is left out when optional, else InputError."""
        prepared, problems = {}, {}
        for m in self._with_requirements(self.methods):
            try:
                prepared[m.name] = m.prepare(self.model, self.cam_layer)
            except InputError as exc:
                problems[m.name] = str(exc)
        self.left_out: dict[str, str] = {}
        for m in list(self.methods):
            why = next((problems[r.name] for r in self._with_requirements([m]) if r.name in problems), None)
            if why is None:
                continue
            if m.name not in optional:
                raise InputError(f"{methods_key}: {why}" if methods_key else why)
            self.left_out[m.name] = why
            self.methods.remove(m)
        return prepared

    def params(self, method: Method) -> dict:
        """The method's parameters: its defaults updated with the Explainer's params."""
        return {**method.defaults, **self._params.get(method.name, {})}

    # -- the compiled graphs

    def _forward(self, x, rule: str = "normal"):
        """(logits, probs, CAM layer output or None) with ReLU gradients treated by ``rule``."""
        found = {}

        def call(path, layer, arg, *args, **kwargs):
            if rule == "normal" or not is_relu(path, layer, self._linear):
                out = layer(arg, *args, **kwargs)
            elif path in self._linear:  # a layer with a ReLU activation: its linear copy, then the ReLU
                out = rectified(layer.activation, rule)(self._linear[path](arg, *args, **kwargs))
            else:  # a ReLU or Activation("relu") layer
                out = rectified(lambda t: layer(t, *args, **kwargs), rule)(arg)
            if path == self.cam_layer:
                found["cam"] = out
            return out

        out, pre = replay(self.model, preprocess(x, self.preprocess_mode), call)
        logits, probs = self.head.logits_and_probs(pre, out)
        return logits, probs, found.get("cam")

    def chosen(self, logits, probs, targets):
        import tensorflow as tf

        return tf.gather(logits if self.score == "logit" else probs, targets, batch_dims=1)

    def _predict_graph(self, x):
        logits, probs, _ = self._forward(x)
        return logits, probs

    def _gradient_fn(self, x, targets, rule: str):
        """d score / d pixels of the batch (``_gradient_graph``), compiled once per ReLU rule."""
        import tensorflow as tf

        if rule not in self._gradient_fns:
            graph = functools.partial(self._gradient_graph, rule=rule)
            self._gradient_fns[rule] = tf.function(graph, input_signature=self._signature, autograph=False)
        return self._gradient_fns[rule](x, targets)

    def _gradient_graph(self, x, targets, rule):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            logits, probs, _ = self._forward(x, rule)
            chosen = self.chosen(logits, probs, targets)
        return tape.gradient(chosen, x)  # rows are independent: each row gets its own gradient

    def _cam_graph(self, x, targets):
        import keras
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits, probs, acts = self._forward(x)
            chosen = self.chosen(logits, probs, targets)
        return self.cam_maps(acts, tape.gradient(chosen, acts), targets, keras.ops.shape(x)[1:3])

    def cam_maps(self, acts, grads, targets, size):
        """The gradient-CAM family's maps from the CAM layer's activations and the gradient of the
        chosen score (``chosen``) w.r.t. them: (activations, {name: (raw (B, h, w), maps (B, H, W))}).

        The one place these maps are made: the Explainer's own pass calls it, and so does a caller
        that has the activations and the gradient from its own pass (the study's model step).
        """
        import keras
        import tensorflow as tf

        # float32 from here on, also when the model computes in mixed precision
        grads, acts = tf.cast(grads, tf.float32), tf.cast(acts, tf.float32)
        class_weights = None
        if self.cam_dense is not None:
            kernel = self.cam_dense.kernel  # (c, K) variable, read live
            if self.head.kind == "sigmoid":  # logits [0, z]: class 0 has no weights
                kernel = keras.ops.concatenate([keras.ops.zeros_like(kernel), kernel], axis=-1)
            class_weights = tf.gather(tf.transpose(kernel), targets)  # (B, c)
        maps = {}
        for name, weights in self._cam_weighting.items():
            raw = weighted_map(weights(acts, grads, class_weights), acts)
            maps[name] = (raw, upsample(raw, size))
        return acts, maps

    # -- batched primitives (numpy in, numpy out)

    def _chunks(self, n: int, rows: int):
        return [slice(s, min(s + rows, n)) for s in range(0, n, rows)]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probs), each (B, K), at most max_batch images per pass."""
        parts = [self._predict_fn(np.asarray(x[s], np.float32)) for s in self._chunks(len(x), self.max_batch)]
        return tuple(np.concatenate([np.asarray(p[i]) for p in parts]) for i in (0, 1))

    def _evaluate(self, perturbation: Perturbation, targets: np.ndarray, fn, max_rows: int | None = None):
        """Yield (images, index, fn's values (b, k, ...)) over all copies, at most max_rows per call."""
        rows = int(max_rows or self.max_batch)
        per_pass = min(len(perturbation.x), rows)
        k = max(1, rows // per_pass)
        for images in self._chunks(len(perturbation.x), per_pass):
            for first in range(0, perturbation.count, k):
                index = np.arange(first, min(first + k, perturbation.count))
                batch = perturbation.inputs(images, index)
                b, kk = batch.shape[:2]
                values = np.asarray(
                    fn(
                        batch.reshape((b * kk,) + batch.shape[2:]).astype(np.float32),
                        np.repeat(targets[images], kk).astype(np.int64),
                    )
                )
                yield images, index, values.reshape((b, kk) + values.shape[1:])

    def scores(
        self, perturbation: Perturbation, targets: np.ndarray, kind: str | None = None, max_rows: int | None = None
    ) -> np.ndarray:
        """(B, count): the target's score ("logit" or "probability"; default: the Explainer's)."""
        column = 0 if (kind or self.score) == "logit" else 1

        def fn(x, t):
            return np.asarray(self._predict_fn(x)[column])[np.arange(len(t)), t]

        out = np.zeros((len(perturbation.x), perturbation.count), np.float32)
        for images, index, values in self._evaluate(perturbation, targets, fn, max_rows):
            out[images, index[0] : index[-1] + 1] = values
        return out

    def weights_changed(self) -> None:
        """After the model's weights were assigned in place (the cascading randomization): the linear
        copies of its ReLU layers and of its softmax layer take them too. Every compiled function
        reads the model's own variables and the copies', so nothing is traced again."""
        self.head.weights_changed()
        if self._linear:
            layers = dict(iter_layers(self.model))
            for path, copy in self._linear.items():
                copy.set_weights(layers[path].get_weights())

    def mean_gradient(self, perturbation: Perturbation, targets: np.ndarray, rule: str = "normal") -> np.ndarray:
        """(B, H, W, C): d score / d pixels averaged over the copies, ReLUs treated by ``rule``."""
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}")
        if rule != "normal":
            self._linear = self._linear if self._linear is not None else relu_linear_copies(self.model)
        total = np.zeros(perturbation.x.shape, np.float64)
        for images, _, grads in self._evaluate(perturbation, targets, lambda x, t: self._gradient_fn(x, t, rule)):
            total[images] += grads.sum(axis=1)
        return (total / perturbation.count).astype(np.float32)

    # -- the public entry points

    def resolve_targets(self, x: np.ndarray, targets, group: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Class indices for the TARGET_ codes (``core.head.resolve_targets``): returns (targets, probs)."""
        targets = np.asarray(targets, dtype=np.int64)
        logits, probs = self.predict(np.asarray(x, np.float32))
        resolved = np.asarray(resolve_targets(logits, targets, group)).astype(np.int64)
        if resolved.shape != (len(x),) or resolved.min() < 0 or resolved.max() >= logits.shape[-1]:
            raise InputError(
                f"targets {targets.tolist()}: need one class index (0 to {logits.shape[-1] - 1}) "
                f"or TARGET_ code per image"
            )
        return resolved, probs

    def explain(self, x: np.ndarray, targets, group: int = 1, cams: tuple | None = None) -> dict[str, MethodResult]:
        """Every method's MethodResult for the batch x (B, H, W, C) in [0, 1] and targets (B,).

        ``cams``: ``cam_maps``'s answer for this batch and these targets when the caller's own pass
        made it (the CAM family then needs no pass of its own).
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise InputError(f"explain: x has shape {x.shape}; it needs (B, H, W, C)")
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (len(x),) or (targets < 0).any():
            targets = self.resolve_targets(x, targets, group)[0]
        context = Context(self, x, targets)
        if cams is not None:
            context.set_cams(*cams)
        return {m.name: context.result(m.name) for m in self.methods}


class Context:
    """One explain() call: the batch, its targets, and the results methods share."""

    def __init__(self, explainer: Explainer, x: np.ndarray, targets: np.ndarray):
        self.explainer, self.x, self.targets = explainer, x, targets
        self._results: dict[str, MethodResult] = {}
        self._cams = None

    def params(self, method: Method) -> dict:
        return self.explainer.params(method)

    def result(self, name: str) -> MethodResult:
        """A method's result for this batch, computed once."""
        if name not in self._results:
            self._results[name] = self.explainer.method(name).run(self)
        return self._results[name]

    def cams(self) -> dict:
        """One compiled pass: {"activations": (B, h, w, c), name: (raw, maps) per gradient CAM}."""
        if self._cams is None:
            ex = self.explainer
            parts = [ex._cam_fn(self.x[s], self.targets[s]) for s in ex._chunks(len(self.x), ex.max_batch)]
            self.set_cams(
                np.concatenate([np.asarray(p[0]) for p in parts]),
                {
                    name: tuple(np.concatenate([np.asarray(p[1][name][i]) for p in parts]) for i in (0, 1))
                    for name in ex._cam_weighting
                },
            )
        return self._cams

    def set_cams(self, activations, maps: dict) -> None:
        """The CAM family's maps for this batch (``Explainer.cam_maps``'s answer, as numpy)."""
        self._cams = {
            "activations": np.asarray(activations),
            **{name: tuple(np.asarray(a) for a in maps[name]) for name in self.explainer._cam_weighting},
        }
