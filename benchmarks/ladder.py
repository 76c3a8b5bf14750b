"""What the equivariance ladder costs the measure step, and whether its memory stays flat.

The measure job (``stages.measure.measure_shard``, the default config's transforms and heatmap
methods) on N shapes test images with a shapes_cnn (random weights: the cost does not depend on
them), once without the ladder and once with channel maps fit by ``stages.channel_maps`` on the
first 32 images; each run in a fresh process, so its peak RSS is its own. Prints the seconds of each
(the measure_shard call: model load and tracing included, the TensorFlow import not), their ratio
(target ≤ 1.5×) and each process's peak RSS, the best of ``--rounds`` interleaved rounds.

    .venv/bin/python -m benchmarks.ladder [--sizes 1000,10000] [--threads 2] [--rounds 2]
    .venv/bin/python -m benchmarks.ladder --step 256      # the compiled model step alone (minutes, not an hour)

The fit job's cost is fixed by equivariance.fit_images (it does not grow with the run's images).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT_IMAGES = 32


def setup(folder: Path, n_images: int) -> dict:
    """A shapes dataset with at least n_images test images, a model, its info, the analysis config."""
    import keras
    import yaml

    from convlens import models
    from convlens.config import validate
    from convlens.data import make_shapes
    from convlens.stages.load_model import load_model

    per_class = int(n_images / 3 / 0.2) + 10  # test_fraction 0.2 of 3 classes
    make_shapes(per_class, 28, 0.2, 0).save(folder / "data.npz")
    keras.utils.set_random_seed(0)
    models.build_shapes_cnn((28, 28, 3), 3).save(folder / "shapes.keras")
    out = {k: str(folder / f"{k}.{ext}") for k, ext in (("model", "keras"), ("info", "json"), ("architecture", "csv"))}
    load_model("m", {"source": "load", "path": str(folder / "shapes.keras"), "class_names": ["a", "b", "c"]}, 2, out)
    root = Path(__file__).resolve().parent.parent
    cfg = yaml.safe_load((root / "config" / "config.yaml").read_text())
    cfg = validate({**cfg, "equivariance": {"fit_images": FIT_IMAGES}}, base_dir=root)
    analysis = {
        **{k: cfg[k] for k in ("seed", "transforms", "fill_mode", "fill_value", "batch_size", "mixed_precision")},
        "heatmaps": {k: v for k, v in cfg["heatmaps"].items() if not k.startswith("quality_")},
        "activations": cfg["activations"],
        "equivariance": cfg["equivariance"],
        "sheet_transforms": cfg["report"]["sheet_transforms"],
    }
    return {"model": out["model"], "info": out["info"], "cfg": analysis, "npz": str(folder / "data.npz")}


def entries(npz: str, n: int) -> list[dict]:
    return [
        {"id": f"t{i}", "dataset": "shapes", "index": i, "dataset_npz": npz, "resize": "stretch", "path": None}
        for i in range(n)
    ]


def child(spec_json: str) -> None:
    """One measure job in this process; prints {"seconds", "max_rss_mb"} as JSON."""
    from convlens.stages.measure import measure_shard
    from convlens.stages.run import setup_logging

    spec = json.loads(Path(spec_json).read_text())
    folder = Path(spec["out"])
    tag = f"{spec['n']}_{'ladder' if spec['maps'] else 'plain'}_{time.time_ns()}"
    setup_logging(str(folder / f"measure_{tag}.log"))  # the shard's own split: read, model step, metrics
    out = {k: str(folder / n) for k, n in (("metrics", "m.csv.gz"), ("images", "i.csv"), ("pooled", "p.npz"))}
    images = entries(spec["npz"], spec["n"])
    t0 = time.perf_counter()
    measure_shard(spec["model"], spec["info"], images, spec["cfg"], spec["threads"], out, spec["maps"])
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = json.dumps({"n": spec["n"], "ladder": bool(spec["maps"]), "seconds": seconds, "max_rss_mb": rss})
    with open(folder / "runs.jsonl", "a") as fh:  # each run as it ends, should the whole benchmark be cut short
        fh.write(result + "\n")
    print(result)


def run_child(spec: dict, folder: Path) -> dict:
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.ladder", "--child", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def step_ratio(n_images: int, rounds: int) -> None:
    """The compiled model step alone (``Analyzer``: warps, maps, scores, the equivariance sums; no
    heatmap methods), the default config's transforms, with and without the ladder's numerators, on
    the same batches; then the Python rows of one image (``metrics.image_metrics`` against
    ``Ladder.rows``). Best of ``rounds`` interleaved rounds."""
    import keras
    import numpy as np
    import yaml

    from convlens import models
    from convlens import transforms as tr
    from convlens.config import validate
    from convlens.core.grids import layer_grids
    from convlens.core.layers import feature_layers
    from convlens.sensitivity import ladder as ld
    from convlens.sensitivity import metrics as sensitivity
    from convlens.sensitivity.analyzer import Analyzer
    from convlens.stages.channel_maps import accumulate

    root = Path(__file__).resolve().parent.parent
    cfg = validate(yaml.safe_load((root / "config" / "config.yaml").read_text()), base_dir=root)
    keras.utils.set_random_seed(0)
    model = models.build_shapes_cnn((28, 28, 3), 3)
    layers = feature_layers(model)
    transforms = tr.build_transforms(cfg["transforms"])
    study = sensitivity.Study.build(transforms, 28, 28, layers, layer_grids(model, layers), "constant", 0.0)
    n_t, per_call = len(transforms), max(1, cfg["batch_size"] // len(transforms))
    x = np.random.default_rng(0).random((n_images, 28, 28, 3)).astype("float32")
    seeds = np.arange(n_images)
    fit = Analyzer(model, layers, "unit", warps=study, maps=True).run(x[:per_call], n_t, seeds=seeds[:per_call])
    sums = [[ld.PairSums(a.shape[-1]) if g else None for g in study.geometric] for a in fit["activations"]]
    accumulate(study, fit["activations"], per_call, sums)
    maps = ld.fit_maps(layers, sums, ld.DEFAULT_LAMBDA, [])
    runs = {
        "without": Analyzer(model, layers, "unit", samplers=study.samplers, warps=study, maps=False),
        "with ladder": Analyzer(
            model,
            layers,
            "unit",
            samplers=study.samplers,
            warps=study,
            maps=False,
            ladder=ld.Ladder(maps, ("perm", "linear")),
        ),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds + 1):  # the first round traces
        for name, analyzer in runs.items():
            t0 = time.perf_counter()
            for start in range(0, n_images, per_call):
                out = analyzer.run(x[start : start + per_call], n_t, seeds=seeds[start : start + per_call])
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"model step, {n_images} images x {n_t} transforms, {per_call} images a call (best of {rounds}):")
    for name, seconds in best.items():
        print(f"  {name}: {seconds:.2f} s ({seconds / best['without']:.2f}x)")
    one = {k: (v[:n_t] if not isinstance(v, list) else [a[:n_t] for a in v]) for k, v in out.items()}
    stats = sensitivity.LayerStats(one["num"], one["den"], one["pooled"])
    t0 = time.perf_counter()
    for _ in range(20):
        sensitivity.image_metrics(study, "x", np.repeat(x[:1], n_t, 0), stats, one["probs"], None, {})
    base = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for _ in range(20):
        ld.Ladder(maps, ("perm", "linear")).rows(study, "x", one)
    extra = (time.perf_counter() - t0) / 20
    print(
        f"rows of one image: {base * 1e3:.1f} ms (metrics.image_metrics, no heatmaps), ladder rows {extra * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--step", type=int, help="only the model step (and rows) on this many images")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.step:
        step_ratio(args.step, args.rounds)
        return
    from convlens.stages.channel_maps import fit_channel_maps

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = setup(folder, max(sizes))
        maps = {k: str(folder / f"maps.{e}") for k, e in (("maps", "npz"), ("table", "csv"), ("figure", "png"))}
        t0 = time.perf_counter()
        fit_channel_maps(base["model"], base["info"], entries(base["npz"], FIT_IMAGES), base["cfg"], args.threads, maps)
        print(f"fit_channel_maps on {FIT_IMAGES} images: {time.perf_counter() - t0:.1f} s", flush=True)
        for n in sizes:
            runs = {"without": [], "with ladder": []}
            for _ in range(args.rounds):  # interleaved, the best of each: the machine may be shared
                for name, path in (("without", None), ("with ladder", maps["maps"])):
                    spec = {**base, "n": n, "threads": args.threads, "maps": path, "out": str(folder)}
                    runs[name].append(run_child(spec, folder))
            plain, ladder = ({k: min(r[k] for r in rs) for k in rs[0]} for rs in runs.values())
            print(
                f"{n} images, best of {args.rounds}: "
                f"measure {plain['seconds']:.1f} s without, {ladder['seconds']:.1f} s with the ladder "
                f"({ladder['seconds'] / plain['seconds']:.2f}×); peak RSS {plain['max_rss_mb']:.0f} MB without, "
                f"{ladder['max_rss_mb']:.0f} MB with",
                flush=True,
            )


if __name__ == "__main__":
    main()
