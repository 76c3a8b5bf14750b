"""The benchmark harness's own logic on known answers (no TensorFlow, no timings asserted)."""
import numpy as np
import pytest

from benchmarks import harness, run
from convlens.config import list_images, validate
from convlens.transforms import build_transforms

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def tsv(path, *rows):
    """rows: (s, max_rss, cpu_time); None writes NA."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{s}\t0:00:00\t{'NA' if rss is None else rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n"
                        for s, rss, cpu in rows]
    path.write_text("".join(lines))


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
    assert harness.rule_of("vgg16/analyze_s12.tsv") == "analyze"
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
    assert stages["rendering (per-image figures)"] == pytest.approx(5.0)
    assert stages["filters (not in the study)"] == pytest.approx(8.0)
    assert not any(name.startswith("other") for name in stages)


def test_unknown_rules_are_kept_as_other(bench_tree):
    tsv(bench_tree / "vgg16" / "something_new.tsv", (2.5, 10.0, 1.0))
    stages = dict(harness.per_stage(harness.per_rule(harness.parse_benchmarks(bench_tree))))
    assert stages["other (something_new)"] == pytest.approx(2.5)


def test_shard_log_split_is_summed_over_jobs():
    logs = ["... INFO shard done in 20.0 s (model step 5.5 s, metrics and files 9.0 s)\n",
            "x\n... INFO shard done in 10.0 s (model step 2.5 s, heatmap methods 1.0 s, metrics and files 4.0 s)\n",
            "a log without the line"]
    split = harness.parse_shard_logs(logs)
    assert split["logs"] == 2 and split["in_job_s"] == pytest.approx(30.0)
    assert split["parts"] == pytest.approx({"model step": 8.0, "metrics and files": 13.0, "heatmap methods": 1.0})
    assert harness.parse_shard_logs(["nothing"]) is None


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
    model_file.write_bytes(b"not read by validation")
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


def test_tables_render_a_result_file():
    results = {"meta": {"date": "d", "machine": {"cores": 2, "cpu_model": "cpu"}, "command": "c"},
               "models": {"m": {"sizes": {
                   "8": {"limit": {"e2e_s": 10.0, "compute_s": 6.0},
                         "convlens": {"wall_s": 30.0, "wall_excl_extras_s": 25.0, "rerun_s": 1.0,
                                      "shards": {"s0": 8}, "rules": {"analyze": {"jobs": 1, "s": 12.0, "s_max": 12.0,
                                                                                  "max_rss": 900.0, "cpu_time": 20.0}},
                                      "jobs_s": 12.0, "analyze_jobs": [{"max_rss_mb": 900.0}],
                                      "analyze_split": {"logs": 1, "in_job_s": 10.0, "parts": {"model step": 6.5}}}}},
                   "gradcam": {"batch": 30, "reps": 3, "convlens_gradcam": {"first_s": 1.0, "median_s": 0.5},
                               "tf_keras_vis": {"first_s": 2.0, "median_s": 2.0}}}}}
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
        :, None, None, None].astype("float32")
    steps = peers.convlens_steps(model, "unit")
    assert list(steps) == ["convlens_gradcam", "convlens_full_step"]
    assert [n_layers for _, n_layers, _ in steps.values()] == [0, 1]
    logits = np.log(np.asarray(model(x)))
    reference = np.repeat(logits[::harness.N_TRANSFORMS].argmax(-1), harness.N_TRANSFORMS)
    want = Explainer(model, ["gradcam"]).explain(x, reference)["gradcam"].raw
    for label, (_, _, step) in steps.items():
        targets, cams = step(x)
        assert np.asarray(targets).tolist() == reference.tolist(), label
        assert np.allclose(cams, want, atol=1e-6), label
