"""What the new measures (the equivariance ladder, CKA, the Lie derivative) cost the measure step, and
whether its memory stays flat in the number of images (issue 21).

The real measure job (``stages.measure.measure_shard``) on N shapes test images with a shapes_cnn
(random weights: the cost does not depend on them) and the default config's 41 transforms, each run
in a fresh process so its peak RSS (``ru_maxrss``: on CPU TensorFlow's tensors are in it) and CPU time
are its own. Variants, side by side in one run, interleaved over ``--rounds`` (best of each):

- ``without``: no ladder (no channel maps), ``cka.enabled: false``, ``lie_derivative: false``;
- ``ladder`` / ``cka`` / ``lie``: that measure alone (the per-part breakdown: its cost over ``without``);
- ``all``: every new measure (ladder fit once by ``stages.channel_maps`` on the first 32 images, not
  timed in the job: its cost is fixed by ``equivariance.fit_images``).

Each with the default config's heatmap methods (``--heatmaps default``) or none (``--heatmaps none``:
the worst case for the ratio, the new measures' cost over the bare model step and metrics).

    .venv/bin/python -m benchmarks.new_measures --sizes 1000 --heatmaps none --variants without,ladder,cka,lie,all
    .venv/bin/python -m benchmarks.new_measures --sizes 250,1000,4000 --heatmaps none --variants all   # memory
    .venv/bin/python -m benchmarks.new_measures --sizes 64 --heatmaps default --variants without,all

Appends every run to ``--out`` (JSON lines: n, heatmaps, variant, seconds, cpu_seconds, model_step,
heatmap_methods, metrics, max_rss_mb) and prints the ratios against ``without``.
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

from benchmarks.ladder import FIT_IMAGES, entries, setup

VARIANTS = {  # variant: (ladder maps, cka, lie)
    "without": (False, False, False),
    "ladder": (True, False, False),
    "cka": (False, True, False),
    "lie": (False, False, True),
    "all": (True, True, True),
}


def variant_config(cfg: dict, variant: str, heatmaps: str) -> dict:
    """The analysis config of one variant: the new measures on or off, the heatmap methods kept or none."""
    _, with_cka, with_lie = VARIANTS[variant]
    out = {**cfg, "lie_derivative": with_lie, "cka": {"enabled": with_cka, "batch_images": 16}}
    if heatmaps == "none":
        out["heatmaps"] = {**cfg["heatmaps"], "methods": []}
    return out


def measure(spec: dict) -> dict:
    """One measure job in this process: wall and CPU seconds of the measure_shard call (model load and
    tracing included, the TensorFlow import not), the job's own split and this process's peak RSS."""
    from convlens.stages import measure as stage

    parts: dict = {}

    class Timed(stage.Analysis):
        def done(self, extra=None):
            parts.update(self.seconds, **(extra or {}))
            super().done(extra)

    folder = Path(spec["out"])
    names = (("metrics", "m.csv.gz"), ("images", "i.csv"), ("pooled", "p.npz"), ("cka", "c.npz"))
    out = {k: str(folder / f"{spec['variant']}_{n}") for k, n in names}
    images = entries(spec["npz"], spec["n"])
    cfg = variant_config(spec["cfg"], spec["variant"], spec["heatmaps"])
    maps = spec["maps"] if VARIANTS[spec["variant"]][0] else None
    original, stage.Analysis = stage.Analysis, Timed
    try:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        stage.measure_shard(spec["model"], spec["info"], images, cfg, spec["threads"], out, maps)
        seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        stage.Analysis = original
    return {
        "n": spec["n"],
        "heatmaps": spec["heatmaps"],
        "variant": spec["variant"],
        "seconds": seconds,
        "cpu_seconds": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
        "model_step": parts.get("model step"),
        "heatmap_methods": parts.get("heatmap methods"),
        "metrics": parts.get("metrics"),
        "max_rss_mb": r1.ru_maxrss / 1024,
    }


def child(spec_json: str) -> None:
    print(json.dumps(measure(json.loads(Path(spec_json).read_text()))))


def run_child(spec: dict, folder: Path) -> dict:
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "benchmarks.new_measures", "--child", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"measure run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(folder: Path, n_images: int, threads: int) -> dict:
    """The dataset, the model and the ladder's channel maps (fit once, on the first 32 images)."""
    from convlens.stages.channel_maps import fit_channel_maps

    base = setup(folder, max(n_images, FIT_IMAGES))
    maps = {k: str(folder / f"maps.{e}") for k, e in (("maps", "npz"), ("table", "csv"), ("figure", "png"))}
    fit_channel_maps(base["model"], base["info"], entries(base["npz"], FIT_IMAGES), base["cfg"], threads, maps)
    return {**base, "maps": maps["maps"]}


def benchmark(sizes, variants, heatmaps, rounds=1, threads=2, folder=None, out=None, in_process=False) -> list[dict]:
    """Every (size, heatmaps, variant) measured ``rounds`` times, interleaved; returns the best run of
    each (least wall time). ``in_process``: in this process (the test; no peak RSS of its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(folder or tmp)
        base = prepare(work, max(sizes), threads)
        best = {}
        for n in sizes:
            for mode in heatmaps:
                for _ in range(rounds):
                    for variant in variants:
                        spec = {**base, "n": n, "heatmaps": mode, "variant": variant, "threads": threads}
                        spec["out"] = str(work)
                        row = measure(spec) if in_process else run_child(spec, work)
                        if out:
                            with open(out, "a") as fh:  # each run as it ends, should the benchmark be cut short
                                fh.write(json.dumps(row) + "\n")
                        key = (n, mode, variant)
                        if key not in best or row["seconds"] < best[key]["seconds"]:
                            best[key] = row
                        print(json.dumps(row), flush=True)
        return list(best.values())


def ratios(rows: list[dict]) -> list[str]:
    """Each variant against ``without`` at the same size and heatmaps: wall, CPU and model step."""
    plain = {(r["n"], r["heatmaps"]): r for r in rows if r["variant"] == "without"}
    lines = []
    for r in rows:
        p = plain.get((r["n"], r["heatmaps"]))
        if p is None or r is p:
            continue
        lines.append(
            f"{r['n']} images, heatmaps {r['heatmaps']}, {r['variant']}: wall {r['seconds']:.1f} s vs "
            f"{p['seconds']:.1f} s ({r['seconds'] / p['seconds']:.2f}x), CPU {r['cpu_seconds']:.1f} vs "
            f"{p['cpu_seconds']:.1f} s ({r['cpu_seconds'] / p['cpu_seconds']:.2f}x), model step "
            f"{r['model_step']:.1f} vs {p['model_step']:.1f} s, "
            f"peak RSS {r['max_rss_mb']:.0f} vs {p['max_rss_mb']:.0f} MB"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--variants", default="without,ladder,cka,lie,all")
    parser.add_argument("--heatmaps", default="none,default", help="comma list of: default, none")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/new_measures.jsonl")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = benchmark(sizes, args.variants.split(","), args.heatmaps.split(","), args.rounds, args.threads, out=args.out)
    print("\n".join(ratios(rows)))


if __name__ == "__main__":
    main()
