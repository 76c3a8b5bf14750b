"""What photometric transforms cost in the study's model step, beside a geometric one (rotation).

One image set through ``sensitivity.analyzer.Analyzer`` (warps, pixel operations, maps, scores and the
equivariance sums; no heatmap methods) with the identity alone, eight rotations, or eight of one
photometric kind; then each operation alone on the same batch. shapes_cnn (random weights) at 28 px
and at 96 px. Best of five interleaved rounds (the machine may be shared); prints times and ratios.

    .venv/bin/python -m benchmarks.photometric
"""

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from convlens import models
from convlens import transforms as tr
from convlens.core.grids import layer_grids
from convlens.core.layers import feature_layers
from convlens.sensitivity import metrics as sensitivity
from convlens.sensitivity import photometric as ph
from convlens.sensitivity.analyzer import Analyzer

SETS = {
    "identity only": [],
    "rotate x8": [{"kind": "rotate", "angle_deg": a} for a in (10, 20, 30, 40, 50, 60, 70, 80)],
    "blur x8": [{"kind": "blur", "sigma_px": s} for s in (0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25)],
    "noise x8": [{"kind": "noise", "std": s} for s in (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08)],
    "brightness x8": [{"kind": "brightness", "delta": d} for d in (-0.4, -0.3, -0.2, -0.1, 0.1, 0.2, 0.3, 0.4)],
    "contrast x8": [{"kind": "contrast", "factor": f} for f in (0.5, 0.6, 0.7, 0.8, 1.2, 1.3, 1.4, 1.5)],
    "jpeg x8": [{"kind": "jpeg", "quality": q} for q in (10, 20, 30, 40, 50, 60, 70, 80)],
}


def bench(size, n_images, reps):
    keras.utils.set_random_seed(0)
    model = models.build_shapes_cnn((size, size, 3), 3)
    layers = feature_layers(model)
    grids = layer_grids(model, layers)
    x = np.random.default_rng(0).random((n_images, size, size, 3)).astype("float32")
    seeds = ph.image_seeds(0, [str(i) for i in range(n_images)])
    print(f"--- shapes_cnn at {size} px, {n_images} images per call, {reps} calls")
    analyzers = {}
    for name, specs in SETS.items():
        ts = tr.build_transforms(specs)
        st = sensitivity.Study.build(ts, size, size, layers, grids, "constant", 0.0)
        an = Analyzer(model, layers, "unit", samplers=st.samplers, warps=st, maps=False)
        an.run(x, len(ts), seeds=seeds)
        analyzers[name] = (an, len(ts))
    best = {name: float("inf") for name in SETS}
    for _ in range(5):  # interleaved rounds, the best of each: the machine is shared
        for name, (an, n_t) in analyzers.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                an.run(x, n_t, seeds=seeds)
            best[name] = min(best[name], (time.perf_counter() - t0) / reps / n_images)
    for name, dt in best.items():
        print(
            f"{name:15s} step {dt * 1e3:7.3f} ms per image; vs rotate x8 {dt / best['rotate x8']:5.2f}x; "
            f"per transformed row over identity {(dt - best['identity only']) / 8 * 1e3:6.3f} ms"
        )
    # the operations alone, on a batch of n_images originals (one transform each)
    print("operations alone (per image):")
    m = tr.Transform("rotate", {"angle_deg": 30}).matrix(size, size)
    vec = tf.constant(np.tile(tr.keras_transform_vector(m)[None], (n_images, 1)), tf.float32)
    ops = {
        "rotate (warp)": lambda im: keras.ops.image.affine_transform(im, vec, fill_mode="constant"),
        "blur 2": lambda im: ph.apply("blur", {"sigma_px": 2}, im),
        "noise (field + add)": lambda im: ph.apply("noise", {"std": 0.05}, im, ph.noise_field(im, seeds)),
        "brightness": lambda im: ph.apply("brightness", {"delta": 0.2}, im),
        "contrast": lambda im: ph.apply("contrast", {"factor": 1.5}, im),
        "jpeg 50": lambda im: ph.apply("jpeg", {"quality": 50}, im),
    }
    for name, f in ops.items():
        g = tf.function(f)
        g(x)
        t0 = time.perf_counter()
        for _ in range(reps * 3):
            g(x)
        print(f"  {name:20s} {(time.perf_counter() - t0) / (reps * 3) / n_images * 1e3:7.4f} ms")


def main() -> None:
    tf.config.threading.set_intra_op_parallelism_threads(2)
    bench(28, 3, 20)
    bench(96, 3, 4)


if __name__ == "__main__":
    sys.exit(main())
