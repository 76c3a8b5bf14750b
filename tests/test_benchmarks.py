"""The benchmark harness's own logic on known answers (no TensorFlow, no timings asserted)."""

import json
import zipfile

import numpy as np
import pytest

from benchmarks import harness, run
from convlens.config import list_images, validate
from convlens.transforms import build_transforms

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def tsv(path, *rows):
    """rows: (s, max_rss, cpu_time); None writes NA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [
        f"{s}\t0:00:00\t{'NA' if rss is None else rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n" for s, rss, cpu in rows
    ]
    path.write_text("".join(lines))


@pytest.fixture
def measure_tree(tmp_path):
    """A results/benchmarks/ tree of issue 12's workflow: measure per shard, draw per model."""
    root = tmp_path / "results" / "benchmarks"
    tsv(root / "shapes" / "measure_s0.tsv", (12.0, 800.0, 20.0))
    tsv(root / "shapes" / "measure_s1.tsv", (8.0, 850.0, 14.0))
    tsv(root / "shapes" / "draw.tsv", (6.0, 700.0, 9.0))
    tsv(root / "shapes" / "load.tsv", (4.0, 600.0, 4.0))
    tsv(root / "shapes" / "sensitivity.tsv", (3.0, 300.0, 2.5))
    tsv(root / "shapes" / "model_extras.tsv", (12.0, 660.0, 14.0))
    tsv(root / "report.tsv", (9.0, 200.0, 8.0))
    return root


@pytest.fixture
def bench_tree(tmp_path):
    root = tmp_path / "results" / "benchmarks"
    tsv(root / "vgg16" / "analyze_s0.tsv", (10.5, 3000.0, 20.0))
    tsv(root / "vgg16" / "analyze_s1.tsv", (4.5, 3100.0, 8.0))
    tsv(root / "vgg16" / "render" / "img000_astronaut.tsv", (2.0, 200.0, 1.9))
    tsv(root / "vgg16" / "render" / "img001_chelsea.tsv", (3.0, None, 2.9))
    tsv(root / "vgg16" / "load.tsv", (11.0, 2700.0, 10.0))
    tsv(root / "vgg16" / "filters.tsv", (7.0, 3200.0, 13.0), (9.0, 3300.0, 15.0))  # two repeats: the mean
    tsv(root / "vgg16" / "sensitivity.tsv", (4.0, 150.0, 3.5))
    tsv(root / "data" / "shapes.tsv", (1.0, 90.0, 0.9))
    tsv(root / "report.tsv", (3.0, 100.0, 2.0))
    return root


def test_rule_names_follow_the_benchmark_paths():
    assert harness.rule_of("vgg16/measure_s12.tsv") == "measure"
    assert harness.rule_of("vgg16/measure_s003.tsv") == "measure"
    assert harness.rule_of("vgg16/draw.tsv") == "draw"
    assert harness.rule_of("vgg16/sensitivity.tsv") == "sensitivity"
    assert harness.rule_of("vgg16/method_quality.tsv") == "method_quality"  # older trees
    assert harness.rule_of("vgg16/model_extras.tsv") == "model_extras"
    assert harness.rule_of("vgg16/analyze_s12.tsv") == "analyze"  # older trees
    assert harness.rule_of("vgg16/render/my_image.tsv") == "render_image"
    assert harness.rule_of("data/shapes.tsv") == "dataset"
    assert harness.rule_of("tiny/load.tsv") == "load_model"
    assert harness.rule_of("tiny/train.tsv") == "train_model"
    assert harness.rule_of("tiny/transform_table.tsv") == "transform_table"
    assert harness.rule_of("report.tsv") == "report"


def test_per_rule_sums_on_a_hand_written_tree(bench_tree):
    jobs = harness.parse_benchmarks(bench_tree)
    assert len(jobs) == 9
    rules = harness.per_rule(jobs)
    assert rules["analyze"]["jobs"] == 2
    assert rules["analyze"]["s"] == pytest.approx(15.0)
    assert rules["analyze"]["s_max"] == pytest.approx(10.5)
    assert rules["analyze"]["max_rss"] == pytest.approx(3100.0)
    assert rules["analyze"]["cpu_time"] == pytest.approx(28.0)
    assert rules["render_image"]["s"] == pytest.approx(5.0)
    assert rules["render_image"]["max_rss"] == pytest.approx(200.0)  # NA is skipped, not zero
    assert rules["filters"]["s"] == pytest.approx(8.0) and rules["filters"]["max_rss"] == pytest.approx(3250.0)
    assert rules["load_model"]["s"] == pytest.approx(11.0)
    assert rules["dataset"]["s"] == pytest.approx(1.0)
    assert list(rules)[0] == "analyze"  # largest first
    assert sum(r["s"] for r in rules.values()) == pytest.approx(15 + 5 + 11 + 8 + 4 + 1 + 3)
    stages = dict(harness.per_stage(rules))
    assert stages["setup (model, transforms)"] == pytest.approx(12.0)
    assert stages["measure (TF: maps, Grad-CAM, metrics; per shard)"] == pytest.approx(15.0)
    assert stages["draw (exemplars: raw arrays, figures)"] == pytest.approx(5.0)
    assert stages["extras: filters, method check, training views (not in the study)"] == pytest.approx(8.0)
    assert not any(name.startswith("other") for name in stages)


def test_measure_and_draw_tiers_are_grouped(measure_tree):
    rules = harness.per_rule(harness.parse_benchmarks(measure_tree))
    assert rules["measure"]["jobs"] == 2 and rules["measure"]["s"] == pytest.approx(20.0)
    assert rules["measure"]["max_rss"] == pytest.approx(850.0)
    assert rules["draw"]["jobs"] == 1 and rules["draw"]["s"] == pytest.approx(6.0)
    stages = dict(harness.per_stage(rules))
    assert stages["measure (TF: maps, Grad-CAM, metrics; per shard)"] == pytest.approx(20.0)
    assert stages["draw (exemplars: raw arrays, figures)"] == pytest.approx(6.0)
    assert stages["sensitivity study (gather the shards, tables, plots)"] == pytest.approx(3.0)
    assert stages["extras: filters, method check, training views (not in the study)"] == pytest.approx(12.0)
    assert stages["report (HTML + PDF)"] == pytest.approx(9.0)
    assert not any(name.startswith("other") for name in stages)
    assert "model_extras" in rules and rules["model_extras"]["s"] == pytest.approx(12.0)


def test_unknown_rules_are_kept_as_other(bench_tree):
    tsv(bench_tree / "vgg16" / "something_new.tsv", (2.5, 10.0, 1.0))
    stages = dict(harness.per_stage(harness.per_rule(harness.parse_benchmarks(bench_tree))))
    assert stages["other (something_new)"] == pytest.approx(2.5)


def test_shard_log_split_is_summed_over_jobs():
    logs = [
        "... INFO shard done in 20.0 s (model step 5.5 s, metrics and files 9.0 s)\n",
        "x\n... INFO shard done in 10.0 s (model step 2.5 s, heatmap methods 1.0 s, metrics and files 4.0 s)\n",
        "a log without the line",
    ]
    split = harness.parse_shard_logs(logs)
    assert split["logs"] == 2 and split["in_job_s"] == pytest.approx(30.0)
    assert split["parts"] == pytest.approx({"model step": 8.0, "metrics and files": 13.0, "heatmap methods": 1.0})
    assert harness.parse_shard_logs(["nothing"]) is None


def test_measure_log_split_has_the_four_parts():
    logs = [
        "INFO images measured: 256 of 256 (80.0/s)\n"
        "INFO shard done in 40.0 s (read 1.5 s, model step 20.0 s, heatmap methods 3.0 s, metrics 10.0 s)\n",
        "INFO shard done in 30.0 s (read 1.0 s, model step 15.0 s, heatmap methods 2.0 s, metrics 8.0 s)\n",
    ]
    split = harness.parse_shard_logs(logs)
    assert split["logs"] == 2 and split["in_job_s"] == pytest.approx(70.0)
    assert list(split["parts"]) == ["read", "model step", "heatmap methods", "metrics"]
    assert split["parts"] == pytest.approx({"read": 2.5, "model step": 35.0, "heatmap methods": 5.0, "metrics": 18.0})


def test_plan_parsing():
    assert harness.parse_plan("shapes:100,1000,10000 vgg16:32,128") == {
        "shapes": [100, 1000, 10000],
        "vgg16": [32, 128],
    }
    assert harness.parse_plan(" vgg16:128,32;shapes:2 ") == {"vgg16": [32, 128], "shapes": [2]}
    assert list(harness.parse_plan("vgg16:8 shapes:4 vgg16:2")) == ["vgg16", "shapes"]  # order kept, sizes merged
    assert harness.parse_plan("vgg16:8 vgg16:2")["vgg16"] == [2, 8]
    for bad in ("", "shapes", "shapes:", ":3", "shapes:a", "shapes:0"):
        with pytest.raises(ValueError):
            harness.parse_plan(bad)
    assert run.make_plan(None, None, None) == harness.parse_plan(run.DEFAULT_PLAN)
    assert run.make_plan(None, "2,4", "shapes") == {"shapes": [2, 4]}  # the older CLI
    assert run.make_plan(None, "8", None) == {"vgg16": [8], "shapes": [8]}
    assert run.make_plan("vggtiny:3", None, None) == {"vggtiny": [3]}
    with pytest.raises(ValueError):
        run.make_plan("shapes:2", "2", None)


def test_the_default_plan_is_issue_12s():
    plan = harness.parse_plan(run.DEFAULT_PLAN)
    assert plan == {"shapes": [100, 1000, 10000], "vgg16": [32, 128]}
    for model, (n, _) in run.RATIO_TARGETS.items():
        assert n in plan[model]
    assert {run.SCALE_TARGETS["small"], run.SCALE_TARGETS["large"], run.DRY_RUN_TARGET["images"]} <= set(plan["shapes"])


DRY_RUN = """Building DAG of jobs...
Job stats:
job               count
--------------  -------
all                   1
draw                  1
load_model            1
measure              64
report                1
sensitivity           1
total                69

Reasons:
    (check individual jobs above for details)
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""


def test_dry_run_job_count():
    out = harness.parse_dry_run(DRY_RUN)
    assert out["jobs"] == 69
    assert out["per_rule"] == {"all": 1, "draw": 1, "load_model": 1, "measure": 64, "report": 1, "sensitivity": 1}
    assert (
        harness.parse_dry_run(
            "Building DAG of jobs...\nNothing to be done (all requested files are present and up to date)."
        )["jobs"]
        == 0
    )
    assert harness.parse_dry_run("error")["jobs"] is None


def test_results_parts_and_pdf_info(tmp_path):
    results = tmp_path / "results"
    (results / "shapes" / "measure" / "s0").mkdir(parents=True)
    (results / "shapes" / "measure" / "s0" / "metrics.csv.gz").write_bytes(b"x" * 300)
    (results / "shapes" / "exemplars" / "img000").mkdir(parents=True)
    (results / "shapes" / "exemplars" / "img000" / "raw.npz").write_bytes(b"x" * 50)
    (results / "shapes" / "exemplars.json").write_bytes(b"x" * 7)
    (results / "logs").mkdir()
    (results / "logs" / "a.log").write_bytes(b"x" * 11)
    parts = harness.du_parts(results)
    assert parts == {"logs": 11, "shapes/.": 7, "shapes/exemplars": 50, "shapes/measure": 300}
    assert sum(parts.values()) == harness.du_bytes(results)
    assert harness.pdf_info(tmp_path / "missing.pdf") is None
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    for _ in range(3):
        writer.add_blank_page(72, 72)
    with open(tmp_path / "r.pdf", "wb") as fh:
        writer.write(fh)
    info = harness.pdf_info(tmp_path / "r.pdf")
    assert info["pages"] == 3 and info["bytes"] == (tmp_path / "r.pdf").stat().st_size


def scale_run(wall, extras, nbytes, pages, pdf_bytes):
    return {
        "convlens": {
            "wall_s": wall,
            "wall_excl_extras_s": wall - extras,
            "results_bytes": nbytes,
            "pdf": {"pages": pages, "bytes": pdf_bytes},
        }
    }


def test_scale_checks_and_targets():
    sizes = {
        "100": scale_run(50.0, 10.0, 10_000_000, 20, 4 * 2**20),
        "1000": scale_run(100.0, 10.0, 55_000_000, 21, 5 * 2**20),
    }
    sc = harness.scale_checks(sizes, 100, 1000)
    assert sc["time_ratio"] == pytest.approx(2.0) and sc["time_ratio_excl_extras"] == pytest.approx(90 / 40)
    assert sc["bytes_per_added_image"] == pytest.approx(50_000) and sc["bytes_per_image_at_large"] == 55_000
    assert sc["pages"] == [20, 21] and sc["pages_difference"] == 1 and sc["pdf_mb_at_large"] == pytest.approx(5.0)
    assert harness.scale_checks(sizes, 100, 10000) is None
    results = {
        "models": {
            "shapes": {
                "sizes": {
                    **sizes,
                    "10000": {
                        "limit": {"e2e_s": 20.0},
                        "convlens": {"wall_s": 50.0, "wall_excl_extras_s": 38.0, "dry_run": {"jobs": 70, "s": 12.0}},
                    },
                }
            }
        }
    }
    targets = {t["target"]: t for t in run.issue_targets(results)}
    ratio = targets["shapes at 10000 images: convlens e2e ≤ 2.0 × bare TensorFlow"]
    assert ratio["holds"] == "**no**" and ratio["ratio"] == pytest.approx(2.5)
    assert ratio["ratio_excl_extras"] == pytest.approx(1.9)
    assert targets["dry run over 10000 images (shapes): ≤ 300 jobs in < 20 s"]["holds"] == "**yes**"
    assert targets["shapes, 100 → 1000 images: time ≤ 2.5 ×"]["holds"] == "**yes**"
    assert targets["shapes, 100 → 1000 images: ≤ 100 KB of results per image"]["holds"] == "**yes**"
    assert targets["shapes, 100 → 1000 images: PDF pages the same within 3"]["holds"] == "**yes**"
    assert targets["shapes, 100 → 1000 images: PDF ≤ 25 MB at 1000"]["holds"] == "**yes**"
    assert not any(t.startswith("vgg16") for t in targets)  # not measured: not listed
    text = run.tables(results)
    assert "## Issue 12's targets" in text and "| 2.50 | 1.90 |" in text and "70 in 12.0 s" in text


def test_linear_fit_recovers_slope_and_intercept():
    xs = [8, 32, 128]
    fit = harness.linear_fit(xs, [7.0 + 1.75 * x for x in xs])
    assert fit["slope"] == pytest.approx(1.75) and fit["intercept"] == pytest.approx(7.0)
    assert fit["r2"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    xs = list(range(1, 200))
    ys = [3.0 + 0.5 * x + rng.normal(0, 0.1) for x in xs]
    fit = harness.linear_fit(xs, ys)
    slope, intercept = np.polyfit(xs, ys, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    assert 0.99 < fit["r2"] <= 1.0
    with pytest.raises(ValueError):
        harness.linear_fit([8, 8], [1.0, 2.0])


@pytest.mark.parametrize("model", ["vgg16", "shapes"])
def test_study_config_is_valid_and_has_six_transforms(tmp_path, model):
    (tmp_path / "images").mkdir()
    harness.make_images(tmp_path / "images", 3, 16)
    model_file = tmp_path / "shapes_cnn.keras"
    # validation reads the archive's config.json (convlens.archive): a stand-in with an input, a conv
    # layer and three outputs, as the shapes model has
    stand_in = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "input", "batch_shape": [None, 16, 16, 3]}},
                {"class_name": "Conv2D", "config": {"name": "block1_conv1"}},
                {"class_name": "Dense", "config": {"name": "predictions", "units": 3}},
            ]
        },
    }
    with zipfile.ZipFile(model_file, "w") as archive:
        archive.writestr("config.json", json.dumps(stand_in))
    cfg = harness.study_config(model, "images", model_file if model == "shapes" else None, images_per_job=32)
    checked = validate(cfg, base_dir=tmp_path)
    transforms = build_transforms(checked["transforms"])
    assert len(transforms) == harness.N_TRANSFORMS == 6
    assert transforms[0].kind == "identity"
    assert sorted(t.kind for t in transforms[1:]) == ["hflip", "rotate", "scale", "shift", "vflip"]
    assert checked["images_per_job"] == 32 and checked["filters"]["n_filters"] == 4
    assert checked["filters"]["steps"] == checked["filters"]["regularized"]["steps"] == 5
    assert len(list_images(checked, tmp_path)) == 3
    assert harness.transform_matrices(16, 16).shape == (6, 3, 3)
    np.testing.assert_allclose(harness.transform_matrices(16, 16)[0], np.eye(3))


def test_benchmark_images_are_distinct(tmp_path):
    from PIL import Image

    paths = harness.make_images(tmp_path, 20, 12)
    arrays = [np.asarray(Image.open(p)) for p in paths]
    assert all(a.shape == (12, 12, 3) for a in arrays)
    assert len({a.tobytes() for a in arrays}) == 20
    variants = {harness.image_variant(i, 15) for i in range(128)}
    assert len(variants) == 128


def test_benchmark_images_go_beyond_the_named_variants(tmp_path):
    """Past 30 variants per photo the crops are random (seeded by the index): any number is distinct."""
    n_sources = 15
    boxes = {(i % n_sources, *harness.crop_box(i, n_sources, 300, 400)) for i in range(2000)}
    assert len(boxes) == 2000
    assert harness.crop_box(1234, n_sources, 300, 400) == harness.crop_box(1234, n_sources, 300, 400)
    top, left, side, _ = harness.crop_box(999, n_sources, 300, 400)
    assert 0 <= top and top + side <= 300 and 0 <= left and left + side <= 400
    assert harness.image_name(7, "coffee") == "img007_coffee.png"  # names of earlier benchmarks kept
    assert harness.image_name(1234, "coffee") == "img01234_coffee.png"


def test_tables_render_a_result_file():
    results = {
        "meta": {"date": "d", "machine": {"cores": 2, "cpu_model": "cpu"}, "command": "c"},
        "models": {
            "m": {
                "sizes": {
                    "8": {
                        "limit": {"e2e_s": 10.0, "compute_s": 6.0},
                        "convlens": {
                            "wall_s": 30.0,
                            "wall_excl_extras_s": 25.0,
                            "rerun_s": 1.0,
                            "shards": {"s0": 8},
                            "rules": {
                                "analyze": {"jobs": 1, "s": 12.0, "s_max": 12.0, "max_rss": 900.0, "cpu_time": 20.0}
                            },
                            "jobs_s": 12.0,
                            "analyze_jobs": [{"max_rss_mb": 900.0}],  # an older file
                            "analyze_split": {"logs": 1, "in_job_s": 10.0, "parts": {"model step": 6.5}},
                        },
                    }
                },
                "gradcam": {
                    "batch": 30,
                    "reps": 3,
                    "convlens_gradcam": {"first_s": 1.0, "median_s": 0.5},
                    "tf_keras_vis": {"first_s": 2.0, "median_s": 2.0},
                },
            }
        },
    }
    text = run.tables(results)
    assert "| 8 | 48 | 6.0 | 10.0 | 30.0 | 25.0 | 3.00 | 2.50 |" in text
    assert "| 4.00 |" in text  # tf-keras-vis takes 4 x convlens's Grad-CAM time


def test_peers_times_the_explainers_gradcam_for_the_reference_class():
    """peers.py's convlens steps (Grad-CAM alone, and the study's step) give the Explainer's Grad-CAM
    for each group's reference class: the maps it compares with tf-keras-vis."""
    pytest.importorskip("keras")
    from benchmarks import peers
    from convlens.attribution import Explainer
    from tests.helpers import gap_model, images

    model = gap_model(shape=(12, 12, 3), filters=5, classes=3, head="softmax", seed=6)
    x = images((2 * harness.N_TRANSFORMS, 12, 12, 3), seed=3) * np.repeat([1.0, 4.0], harness.N_TRANSFORMS)[
        :, None, None, None
    ].astype("float32")
    steps = peers.convlens_steps(model, "unit")
    assert list(steps) == ["convlens_gradcam", "convlens_full_step"]
    assert [n_layers for _, n_layers, _ in steps.values()] == [0, 1]
    logits = np.log(np.asarray(model(x)))
    reference = np.repeat(logits[:: harness.N_TRANSFORMS].argmax(-1), harness.N_TRANSFORMS)
    want = Explainer(model, ["gradcam"]).explain(x, reference)["gradcam"].raw
    for label, (_, _, step) in steps.items():
        targets, cams = step(x)
        assert np.asarray(targets).tolist() == reference.tolist(), label
        assert np.allclose(cams, want, atol=1e-6), label


def test_own_cpu_of_a_process():
    import os
    import subprocess
    import sys

    assert harness.own_cpu_s(os.getpid()) >= 0.0
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert harness.own_cpu_s(p.pid) is None  # gone (reaped)


def test_breakdown_splits_the_measure_and_draw_jobs():
    cl = {
        "rules": {
            "measure": {"jobs": 2, "s": 30.0, "s_max": 16.0, "max_rss": 800.0},
            "draw": {"jobs": 1, "s": 9.0, "s_max": 9.0, "max_rss": 700.0},
        },
        "jobs_s": 39.0,
        "wall_s": 42.0,
        "snakemake_own_cpu_s": 5.5,
        "measure_split": {
            "logs": 2,
            "in_job_s": 24.0,
            "parts": {"read": 1.0, "model step": 12.0, "heatmap methods": 4.0, "metrics": 3.0},
        },
        "draw_split": {"logs": 1, "in_job_s": 7.0, "parts": {"model step": 2.0}},
    }
    rows = {r[0]: r[2] for r in run.breakdown_rows(cl, {"compute_s": 10.0})}
    assert rows["↳ measure: before the job's work (interpreter, imports)"] == "6.0"
    assert rows["↳ measure: in-job set-up (TF, model load, probe; unnamed)"] == "4.0"
    assert rows["↳ measure: model step"] == "12.0" and rows["↳ measure: metrics"] == "3.0"
    assert rows["(limit compute, to set beside the model step)"] == "10.0"
    assert rows["↳ draw: in-job set-up (TF, model load, probe; unnamed)"] == "5.0"
    assert rows["(snakemake's own process: CPU s, its jobs not included; read every 0.5 s)"] == "5.5"


@pytest.mark.integration
def test_the_harness_runs_end_to_end_on_a_handful_of_images(tmp_path):
    """benchmarks/run.py itself, as `make bench` runs it, on 2 images of the shapes model: prep makes
    and trains the model file, the limit and convlens run the same study, results.json has their rows
    and the ratio between them. The harness broke once without any test noticing (prep's spec)."""
    import json
    import math
    import subprocess
    import sys

    out = tmp_path / "results.json"
    cmd = [sys.executable, str(harness.ROOT / "benchmarks" / "run.py"), "--plan", "shapes:2"]
    cmd += ["--steps", "limit,convlens", "--no-dry-run", "--n-filters", "1", "--filter-steps", "1"]
    cmd += ["--quality-images", "0"]  # the method check off: its job is not the harness's concern
    cmd += ["--out", str(out), "--workdir", str(tmp_path / "work")]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(out.read_text())
    assert '"error"' not in json.dumps(results)
    shapes = results["models"]["shapes"]
    prep = shapes["prep"]  # the model file prep.py made: the default shapes_cnn after one epoch
    assert prep["kind"] == "shapes" and prep["epochs"] == 1 and prep["params"] > 0
    assert 0.0 <= prep["test_accuracy"] <= 1.0
    size = shapes["sizes"]["2"]
    lim, cl = size["limit"], size["convlens"]
    assert lim["n_images"] == 2 and lim["n_inputs"] == 2 * (1 + len(harness.TRANSFORMS))  # identity first
    assert lim["n_layers"] > 0 and lim["calls"] == 1
    for value in (lim["e2e_s"], lim["compute_s"], cl["wall_s"], cl["wall_excl_extras_s"], cl["jobs_s"]):
        assert math.isfinite(value) and value > 0
    ratio = harness.ratio(cl["wall_s"], lim["e2e_s"])
    assert math.isfinite(ratio) and ratio > 0
    assert sum(cl["shards"].values()) == 2
    assert cl["rerun_nothing_done"] is True
    assert set(harness.MEASURE_RULES) & set(cl["rules"]) and "report" in cl["rules"]
    assert all(j["s"] > 0 for j in cl["measure_jobs"]) and cl["measure_jobs"]
    assert cl["pdf"]["pages"] > 0 and cl["html_bytes"] > 0
    # the table printed on stdout has the study's row: 2 images, 12 inputs
    assert "| 2 | 12 |" in p.stdout
