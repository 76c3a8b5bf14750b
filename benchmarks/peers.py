"""The peers, measured on the benchmark's images and model (a child process of run.py).

    python benchmarks/peers.py gradcam  --model M --images DIR [--model-file F] [--batch-size 32] [--reps 3]
    python benchmarks/peers.py notebook --model M --images DIR [--model-file F] [--max-images 2]

``gradcam``: one batch (``batch_size // 6`` images x 6 transforms, as convlens batches them) through
  - convlens's Grad-CAM alone (``convlens.attribution.Explainer``, the reference class resolved
    from its own forward pass) and the study's step as a measure job runs it (every conv/pool map
    and the logits from ``convlens.sensitivity.analyzer.Analyzer``, then the Explainer's Grad-CAM for
    the reference class: ``convlens.stages.analysis.explain``, ``stages.analyze`` in older trees), and
  - tf-keras-vis ``Gradcam`` (the softmax replaced by a linear head, i.e. the logit, as convlens's
    default), with its own defaults (maps upsampled to the input and normalized),
  each timed after one untimed first call, ``reps`` times; plus a check that both give the same maps.
``notebook``: the references' one-image-at-a-time Keras style: for every image and transform, one
  ``keras.Model(model.inputs, layer.output)`` per conv/pool layer and ``predict`` on the one input,
  then Grad-CAM with a fresh gradient model and ``tf.GradientTape`` (as in the Keras Grad-CAM example).

Prints one JSON line.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("CONVLENS_BENCH_TREE"):  # the convlens being measured (run.py --at-commit)
    sys.path.insert(0, os.environ["CONVLENS_BENCH_TREE"])

import numpy as np  # noqa: E402

from benchmarks import harness, tfkit  # noqa: E402


def _timed(fn, reps: int) -> dict:
    t = time.perf_counter()
    first = fn()
    first_s = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"first_s": first_s, "times_s": times, "median_s": statistics.median(times), "min_s": min(times)}, first


def _warped_batch(pixels: np.ndarray) -> np.ndarray:
    """Every image's 6 transforms, image-major (identity first), as float32 pixels in [0, 1]."""
    import tensorflow as tf

    n, h, w = pixels.shape[:3]
    vectors = tfkit.transform_vectors(harness.transform_matrices(h, w))
    batch = np.repeat(pixels, harness.N_TRANSFORMS, axis=0)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=batch,
        transforms=np.tile(vectors, (n, 1)),
        output_shape=[h, w],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    ).numpy()


def convlens_steps(model, preprocess_mode: str) -> dict:
    """convlens's two timed steps: {label: (setup_s, layers probed, step)}; ``step(x)`` takes a batch of
    ``harness.N_TRANSFORMS``-row groups (identity first) and returns (targets (B,), Grad-CAM at the CAM
    layer (B, h, w)) for each group's reference class, at the logit.

    ``convlens_gradcam``: the study's compiled step with no feature maps (scores and Grad-CAM);
    ``convlens_full_step``: with every conv/pool map too; both then ``stages.analysis.explain`` as the
    study runs it (the Grad-CAM maps come from the step itself where the tree has that). A tree from before
    the package split (``run.py --at-commit``) has ``backend.Analyzer``, which computed both in one
    compiled step.
    """
    group = harness.N_TRANSFORMS
    try:
        from convlens.attribution import Explainer
        from convlens.core.head import TARGET_REFERENCE
        from convlens.core.layers import feature_layers, last_conv_layer
        from convlens.sensitivity.analyzer import Analyzer
    except ImportError:
        return _backend_steps(model, preprocess_mode)
    try:
        from convlens.stages.analysis import explain
    except ImportError:  # a tree from before issue 12's measure/draw tiers
        from convlens.stages.analyze import explain
    import inspect

    fused = "explainer" in inspect.signature(Analyzer).parameters  # the CAM maps made in the model step
    steps = {}
    for label, layers in (("convlens_gradcam", []), ("convlens_full_step", feature_layers(model))):
        t = time.perf_counter()
        explainer = Explainer(model, ["gradcam"], preprocess_mode, last_conv_layer(model), "logit")
        analyzer = Analyzer(model, layers, preprocess_mode, **({"explainer": explainer} if fused else {}))
        setup = time.perf_counter() - t

        def step(x, analyzer=analyzer, explainer=explainer):
            if fused:  # as the study runs it: one pass for the maps, the scores and Grad-CAM
                out = analyzer.run(x, group, TARGET_REFERENCE)
                maps = explain(explainer, x, out["logits"], TARGET_REFERENCE, group, out)
            else:
                maps = explain(explainer, x, analyzer.run(x, group)["logits"], TARGET_REFERENCE, group)
            return maps["target"], maps["cam"]

        steps[label] = (setup, len(layers), step)
    return steps


def _backend_steps(model, preprocess_mode: str) -> dict:
    """The same two steps with the convlens of before the package split (``convlens.backend``)."""
    from convlens import backend

    steps = {}
    for label, layers in (("convlens_gradcam", []), ("convlens_full_step", backend.feature_layers(model))):
        t = time.perf_counter()
        analyzer = backend.Analyzer(model, layers, backend.last_conv_layer(model), preprocess_mode, "logit")
        setup = time.perf_counter() - t

        def step(x, analyzer=analyzer):
            out = analyzer.run(x, np.full(len(x), backend.TARGET_REFERENCE), harness.N_TRANSFORMS)
            return out["target"], out["cam"]

        steps[label] = (setup, len(layers), step)
    return steps


def gradcam(model_name: str, images: str, model_file: str | None, batch_size: int, reps: int, threads: int) -> dict:
    spec = harness.MODELS[model_name]
    res = {"mode": "gradcam", "model": model_name, "reps": reps, "threads": threads}
    res["import_s"] = tfkit.import_tf(threads)
    t = time.perf_counter()
    model = tfkit.get_model(spec, model_file)
    res["build_s"] = time.perf_counter() - t
    n_img = max(1, batch_size // harness.N_TRANSFORMS)
    x = _warped_batch(tfkit.read_images(images)[:n_img])
    res["batch"] = len(x)
    feats, last_conv, _ = tfkit.flat_layers(model)
    targets = None
    cams = {}

    # convlens: Grad-CAM alone, and with every conv/pool map as the study runs it
    try:
        for label, (setup, n_layers, step) in convlens_steps(model, spec["preprocess"]).items():
            timing, (target, cam) = _timed(lambda step=step: step(x), reps)
            res[label] = {"setup_s": setup, **timing, "n_layers": n_layers}
            targets = np.asarray(target)
            cams[label] = np.asarray(cam)
    except Exception as exc:  # the API moved: say so and go on with the peer
        res["convlens_error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()

    # tf-keras-vis, on the same batch and classes
    try:
        import tf_keras_vis
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        res["tf_keras_vis_version"] = tf_keras_vis.__version__
        if targets is None:  # convlens failed: the reference class from the model itself
            probs = model.predict(np.asarray(tfkit.preprocess(x, spec["preprocess"])), verbose=0)
            targets = np.repeat(probs[:: harness.N_TRANSFORMS].argmax(-1), harness.N_TRANSFORMS)
        xp = np.asarray(tfkit.preprocess(x, spec["preprocess"]))
        t = time.perf_counter()
        visualizer = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
        setup = time.perf_counter() - t
        score = CategoricalScore([int(c) for c in targets])
        timing, _ = _timed(lambda: visualizer(score, xp, penultimate_layer=last_conv.name), reps)
        res["tf_keras_vis"] = {"setup_s": setup, **timing}
        raw = visualizer(score, xp, penultimate_layer=last_conv.name, expand_cam=False, normalize_cam=False)
        cams["tf_keras_vis"] = np.asarray(raw)
    except Exception as exc:
        res["tf_keras_vis_error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()

    if "convlens_gradcam" in cams and "tf_keras_vis" in cams:
        a, b = cams["convlens_gradcam"], cams["tf_keras_vis"]
        scale = max(float(np.abs(a).max()), 1e-12)
        res["agreement_max_abs_diff_rel"] = float(np.abs(a - b).max() / scale)
    res["max_rss_mb"] = tfkit.max_rss_mb()
    res["total_s"] = time.perf_counter() - T_START
    return res


def notebook(model_name: str, images: str, model_file: str | None, max_images: int, threads: int) -> dict:
    spec = harness.MODELS[model_name]
    res = {"mode": "notebook", "model": model_name, "threads": threads}
    res["import_s"] = tfkit.import_tf(threads)
    import keras
    import tensorflow as tf

    t = time.perf_counter()
    model = tfkit.get_model(spec, model_file)
    res["build_s"] = time.perf_counter() - t
    pixels = tfkit.read_images(images)[:max_images]
    h, w = pixels.shape[1:3]
    vectors = tfkit.transform_vectors(harness.transform_matrices(h, w))
    feats, last_conv, head = tfkit.flat_layers(model)
    t_acts = t_cam = t_warp = 0.0
    per_input = []
    for image in pixels:
        reference = None
        for k in range(harness.N_TRANSFORMS):
            t0 = time.perf_counter()
            x = keras.ops.image.affine_transform(
                image[None], vectors[k : k + 1], interpolation="bilinear", fill_mode="constant", fill_value=0.0
            )
            x = np.asarray(tfkit.preprocess(tf.convert_to_tensor(x), spec["preprocess"]))
            t1 = time.perf_counter()
            activations = {}
            for layer in feats:  # one sub-model per layer, predict on one image
                sub = keras.Model(model.inputs, layer.output)
                activations[layer.name] = sub.predict(x, verbose=0)
            probs = model.predict(x, verbose=0)
            t2 = time.perf_counter()
            if reference is None:
                reference = int(probs[0].argmax())
            grad_model = keras.Model(model.inputs, [last_conv.output, head.input])
            with tf.GradientTape() as tape:
                conv_out, pre = grad_model(x)
                logit = (tf.matmul(pre, head.kernel) + head.bias)[:, reference]
            grads = tape.gradient(logit, conv_out)
            pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
            heat = tf.nn.relu(tf.squeeze(conv_out[0] @ pooled[..., None]))
            heat = heat / (tf.reduce_max(heat) + 1e-12)
            np.asarray(tf.image.resize(heat[..., None], (h, w))[..., 0])
            t3 = time.perf_counter()
            t_warp += t1 - t0
            t_acts += t2 - t1
            t_cam += t3 - t2
            per_input.append(t3 - t0)
    n = len(per_input)
    res.update(
        n_images=len(pixels),
        n_inputs=n,
        warp_s=t_warp,
        activations_s=t_acts,
        gradcam_s=t_cam,
        loop_s=sum(per_input),
        per_input_s=sum(per_input) / n,
        per_input_after_first_s=(sum(per_input[1:]) / (n - 1)) if n > 1 else None,
        max_rss_mb=tfkit.max_rss_mb(),
        total_s=time.perf_counter() - T_START,
    )
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["gradcam", "notebook"])
    ap.add_argument("--model", required=True, choices=sorted(harness.MODELS))
    ap.add_argument("--images", required=True)
    ap.add_argument("--model-file")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    if a.mode == "gradcam":
        out = gradcam(a.model, a.images, a.model_file, a.batch_size, a.reps, a.threads)
    else:
        out = notebook(a.model, a.images, a.model_file, a.max_images, a.threads)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
