"""The limit: bare TensorFlow in one process doing a study's model math (a child process of run.py).

Every image's 6 transforms are warped, run through the model in batches laid out as convlens lays
them out (``batch_size // 6`` images per call) by one compiled step that returns every conv and
pooling layer's output, the probabilities and the Grad-CAM of each image's reference class (the
logit, as convlens's default), upsampled to the input. The outputs are brought to numpy and
dropped: no files, no figures, no metrics.

    python benchmarks/limit.py --model vgg16 --images DIR [--model-file F] [--batch-size 32] [--threads 2]

Prints one JSON line: import_s, build_s, read_s, trace_s (first call, one image), compute_s (every
image), max_rss_mb, and the process's own total_s.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("CONVLENS_BENCH_TREE"):  # the convlens being measured (run.py --at-commit)
    sys.path.insert(0, os.environ["CONVLENS_BENCH_TREE"])

from benchmarks import harness, tfkit  # noqa: E402


def build_step(model, preprocess_mode: str, n_transforms: int, vectors):
    """The compiled study step: pixels (n, H, W, C) -> maps, probabilities, Grad-CAM of n * T rows."""
    import keras
    import tensorflow as tf

    feats, last_conv, head = tfkit.flat_layers(model)
    cam_index = feats.index(last_conv)
    probe = keras.Model(model.inputs, [layer.output for layer in feats] + [head.input])
    kernel, bias = head.kernel, head.bias
    vectors = tf.constant(vectors)
    h, w, c = (int(d) for d in model.inputs[0].shape[1:])

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    def step(pixels):
        n = tf.shape(pixels)[0]
        batch = tf.repeat(pixels, n_transforms, axis=0)
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=batch,
            transforms=tf.tile(vectors, [n, 1]),
            output_shape=[h, w],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
        with tf.GradientTape() as tape:
            outs = probe(tfkit.preprocess(warped, preprocess_mode), training=False)
            acts, pre = outs[:-1], outs[-1]
            logits = tf.matmul(pre, kernel) + bias
            reference = tf.argmax(tf.reshape(logits, [n, n_transforms, -1])[:, 0], axis=-1)
            target = tf.repeat(reference, n_transforms)
            chosen = tf.gather(logits, target, batch_dims=1)
        cam_act = acts[cam_index]
        grads = tape.gradient(chosen, cam_act)
        weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * cam_act, axis=-1))
        cam_up = tf.image.resize(cam[..., None], [h, w], method="bilinear")[..., 0]
        return {
            "activations": acts,
            "probs": tf.nn.softmax(logits),
            "target": target,
            "cam": cam,
            "cam_up": cam_up,
            "inputs": warped,
        }

    return step, len(feats)


def to_numpy(out: dict) -> int:
    """Bring every output to host memory (as a user of the results must); returns the bytes."""
    total = 0
    for value in out.values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            total += v.numpy().nbytes
    return total


def run(model_name: str, images: str, model_file: str | None, batch_size: int, threads: int) -> dict:
    spec = harness.MODELS[model_name]
    result = {"model": model_name, "threads": threads, "batch_size": batch_size}
    result["import_s"] = tfkit.import_tf(threads)
    t = time.perf_counter()
    model = tfkit.get_model(spec, model_file)
    result["build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pixels = tfkit.read_images(images)
    result["read_s"] = time.perf_counter() - t
    n_t = harness.N_TRANSFORMS
    h, w = pixels.shape[1:3]
    vectors = tfkit.transform_vectors(harness.transform_matrices(h, w))
    t = time.perf_counter()
    step, n_layers = build_step(model, spec["preprocess"], n_t, vectors)
    to_numpy(step(pixels[:1]))  # trace and compile (and one image's rows)
    result["trace_s"] = time.perf_counter() - t
    per_call = max(1, batch_size // n_t)
    t = time.perf_counter()
    nbytes = 0
    for start in range(0, len(pixels), per_call):
        nbytes += to_numpy(step(pixels[start : start + per_call]))
    result["compute_s"] = time.perf_counter() - t
    result.update(
        n_images=len(pixels),
        n_inputs=len(pixels) * n_t,
        n_layers=n_layers,
        output_mb=nbytes / 2**20,
        calls=-(-len(pixels) // per_call),
        max_rss_mb=tfkit.max_rss_mb(),
        total_s=time.perf_counter() - T_START,
    )
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, choices=sorted(harness.MODELS))
    ap.add_argument("--images", required=True)
    ap.add_argument("--model-file")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.model, a.images, a.model_file, a.batch_size, a.threads)))


if __name__ == "__main__":
    main()
