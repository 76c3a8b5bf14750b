"""User journeys: the whole workflow on the tiny config, run by Snakemake in a temporary folder."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.runs import ROOT, TINY, snakemake

pytestmark = pytest.mark.integration
# the runs after tiny_run that check something else than the heatmaps: Grad-CAM only, the method check on no image
FEW_HEATMAPS = {"methods": ["gradcam"], "quality_images": 0}
# nor the new measures (the equivariance ladder's fit job, CKA, the Lie derivative): tiny_run checks those
NO_NEW_MEASURES = {"lie_derivative": False, "cka": {"enabled": False}, "equivariance": {"perm": False, "linear": False}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, "--configfile", str(TINY))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir, result


def test_report_has_every_stage_for_every_image(tiny_run):
    import pypdf

    workdir, _ = tiny_run
    pdf = workdir / "results" / "report" / "report.pdf"
    html = (workdir / "results" / "report" / "report.html").read_text()
    reader = pypdf.PdfReader(pdf)

    def titles(outline):
        for item in outline:
            if isinstance(item, list):
                yield from titles(item)
            else:
                yield item.title

    bookmarks = list(titles(reader.outline))
    for expected in (
        "Run summary",
        "Transforms",
        "Model tiny",
        "Architecture",
        "Training and test accuracy",
        "Filters",
        "Image shapes-test-0000",
        "Image shapes-test-0001",
    ):
        assert expected in bookmarks
    assert bookmarks[0] == "Verdict"  # the answer first, then the study
    assert bookmarks[1] == "Sensitivity to transforms" and bookmarks[2].startswith("tiny: 2 images")
    # cover+contents, study, run summary, model, filters (may share a page), one sheet per image
    assert 7 <= len(reader.pages) <= 20
    text = "".join(page.extract_text() for page in reader.pages)
    for expected in (
        "Config digest",
        "tensorflow",
        "Test accuracy",
        "page 1 of",
        "Grad-CAM",
        "block1_conv1",
        "heatmaps, one column per method",
        "Every step of the cascade",
    ):
        assert expected in text
    # methods by their display names (convlens.attribution.registry), never their code names
    assert re.search(r"Integrated\s+Gradients", text) and re.search(r"Guided\s+backprop", text)
    assert "integrated_gradients" not in text and "guided_backprop" not in text
    quality = json.loads((workdir / "results" / "tiny" / "methods" / "quality.json").read_text())
    assert [r["method"] for r in quality["rows"]][:2] == ["gradcam", "saliency"] and len(quality["images"]) == 2
    # the user's title is escaped in HTML, shown literally in the PDF
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html and "<b>escaped</b>" not in html
    assert "<b>escaped</b>" in text
    # both images are exemplars (2 measured, 6 asked): each has a sheet with a row per transform, and
    # every figure it names exists
    exemplars = json.loads((workdir / "results" / "tiny" / "exemplars.json").read_text())
    assert exemplars["measured"] == 2 and len(exemplars["exemplars"]) == 2
    assert {e["image"] for e in exemplars["exemplars"]} == {"shapes-test-0000", "shapes-test-0001"}
    assert "Measured: every one of the 2 images" in text and "Exemplar: " in text
    for image in ("shapes-test-0000", "shapes-test-0001"):
        folder = workdir / "results" / "tiny" / "exemplars" / image
        sheet = json.loads((folder / "sheet.json").read_text())
        assert sheet["transforms"] == ["identity", "shift_dx2_dy0", "rotate_-90", "rotate_90", "hflip"]
        for t in sheet["transforms"]:
            for name in [sheet["inputs"][t], sheet["gradcam"][t]] + [
                sheet["activations"][la][t] for la in sheet["layers"]
            ]:
                assert (folder / "figures" / name).is_file()
        assert sheet["sheet_layers"] == ["block1_conv1", "block3_conv2"]  # the model's own override
        methods = [
            "gradcam",
            "saliency",
            "smoothgrad",
            "integrated_gradients",
            "occlusion",
            "guided_backprop",
            "gradcam_pp",
        ]
        assert sheet["methods"] == methods  # the heatmap sheet: a column per configured method
        for t in sheet["transforms"]:
            assert all((folder / "figures" / sheet["heatmaps"][m][t]).is_file() for m in methods)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["cam_layer"] == "block2_conv2"
        assert summary["error"] is None and summary["label_name"] in ("circle", "square", "triangle")
        probs = [row["confidence"] for row in summary["transforms"]]
        assert all(0 < p <= 1 for p in probs)
        with np.load(folder / "raw.npz") as raw:
            assert raw["inputs"].shape == (5, 28, 28, 3)
            assert not np.isnan(raw["cam_up"]).any()
            assert raw["act_0"].shape == (5, 28, 28, 32)


def test_sensitivity_table_has_a_row_per_image_transform_layer_and_metric(tiny_run):
    import pandas as pd

    workdir, _ = tiny_run
    folder = workdir / "results" / "tiny" / "sensitivity"
    table = pd.read_csv(folder / "metrics.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == ["image", "transform", "param", "layer", "metric", "value"]
    summary = json.loads((workdir / "results" / "tiny" / "exemplars" / "shapes-test-0000" / "summary.json").read_text())
    transforms = [row["transform"] for row in summary["transforms"]]
    per_layer = [(layer, m) for layer in summary["layers"] for m in ("equivariance_error", "invariance_cosine")]
    others = [("input", "equivariance_floor")] + [
        ("output", m) for m in ("top1_change", "prob_change", "kl_divergence", "correct")
    ]
    others += [
        (method, m) for method in summary["methods"] for m in ("heatmap_pearson", "heatmap_spearman", "heatmap_iou20")
    ]
    images = ("shapes-test-0000", "shapes-test-0001")
    expected = {(i, t, la, m) for i in images for t in transforms for la, m in per_layer + others}
    # lie_derivative (on by default): per generator of the continuous kinds, the logits and every layer;
    # consistency: per shift curve (the dx=2 shift: shift_x), at the output
    lie = [(g, la) for g in ("shift_x", "shift_y", "rotate") for la in ["output", *summary["layers"]]]
    expected |= {(i, g, la, "lie_derivative") for i in images for g, la in lie}
    expected |= {(i, "shift_x", "output", "consistency") for i in images}
    keys = list(zip(table["image"], table["transform"], table["layer"], table["metric"], strict=False))
    assert len(keys) == len(set(keys)) and set(keys) == expected
    identity = table[table["transform"] == "identity"]
    assert (identity[identity["metric"] == "equivariance_error"]["value"] == 0).all()
    assert (identity[identity["metric"] == "invariance_cosine"]["value"] == 1).all()
    study = json.loads((folder / "study.json").read_text())
    assert study["curves"] == {"rotate": "sweep_rotate.png"}
    assert (folder / "figures" / "sweep_rotate.png").is_file() and (folder / "figures" / "by_layer.png").is_file()
    html = (workdir / "results" / "report" / "report.html").read_text()
    assert html.index('id="sensitivity"') < html.index('id="run-summary"')
    assert 'href="#sheet-tiny-shapes-test-000' in html.split('id="run-summary"')[0]  # findings link image sheets


def test_one_model_gets_intervals_and_no_comparison_chapter(tiny_run):
    import pandas as pd

    workdir, _ = tiny_run
    folder = workdir / "results" / "comparison"
    summary = pd.read_csv(folder / "summary.csv", keep_default_na=False, na_values=[""])
    assert set(summary["model"]) == {"tiny"} and (summary["n"] == 2).all()
    assert len(pd.read_csv(folder / "differences.csv")) == 0
    manifest = json.loads((folder / "comparison.json").read_text())
    assert manifest["note"].startswith("one model") and manifest["findings"] == []
    assert 'id="comparison"' not in (workdir / "results" / "report" / "report.html").read_text()


def test_run_summary_records_digest_versions_and_seed(tiny_run):
    from convlens.config import digest, validate

    workdir, _ = tiny_run
    run = json.loads((workdir / "results" / "report" / "run.json").read_text())
    expected = digest(validate(yaml.safe_load(TINY.read_text())))
    assert run["config_digest"] == expected
    assert run["seed"] == 7
    assert run["versions"]["keras"].startswith("3.")
    metrics = json.loads((workdir / "results" / "tiny" / "model" / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["n_test"]
    logs = workdir / "results" / "logs" / "tiny"
    for log in [logs / "train.log", logs / "model_extras.log", logs / "draw.log"] + sorted(logs.glob("measure_s*.log")):
        assert log.stat().st_size > 0
    from convlens.config import assign_shards, list_images

    shards = assign_shards(list_images(validate(yaml.safe_load(TINY.read_text()))), 1)
    assert sorted(p.stem for p in logs.glob("measure_s*.log")) == [f"measure_{s}" for s in shards]
    # one compact table per shard, no file per image
    measured = workdir / "results" / "tiny" / "measure"
    assert sorted(p.name for p in measured.iterdir()) == sorted(shards)
    for shard in shards:
        shard_files = sorted(p.name for p in (measured / shard).iterdir())
        assert shard_files == ["cka.npz", "images.csv", "metrics.csv.gz", "pooled.npz"]
    assert not (workdir / "results" / "tiny" / "images").exists()


def build_paths(workdir: Path) -> list[bytes]:
    """The absolute paths of the build machine a shared file must not hold: the run's folder, the
    checkout, the home folder (resolved and as given)."""
    found = {str(workdir), str(workdir.resolve()), str(ROOT), str(Path.home())}
    return [p.encode() for p in found if len(p) > 1]


def pdf_leaks(pdf: Path, workdir: Path) -> list[str]:
    """Every file: URI or build-machine path in the PDF: link annotations, metadata, page text, raw bytes."""
    import pypdf

    reader = pypdf.PdfReader(pdf)
    found = []
    for number, page in enumerate(reader.pages, 1):
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A") or {}
            uri = str(action.get("/URI", ""))
            if uri and not uri.startswith(("http://", "https://")):
                found.append(f"page {number}: link {uri}")
    texts = [str(v) for v in (reader.metadata or {}).values()] + [page.extract_text() for page in reader.pages]
    raw = pdf.read_bytes()
    for path in build_paths(workdir):
        found += [f"text: {path.decode()}" for t in texts if path.decode() in t][:1]
        found += [f"bytes: {path.decode()}"] if path in raw else []
    found += ["bytes: file:"] if b"file:" in raw else []
    return found


def test_the_pdf_and_html_hold_no_file_uri_or_path_of_the_build_machine(tiny_run):
    workdir, _ = tiny_run
    report_dir = workdir / "results" / "report"
    leaks = pdf_leaks(report_dir / "report.pdf", workdir)
    assert not leaks, leaks[:5]
    html = (report_dir / "report.html").read_bytes()
    assert b"file:" not in html and not [p for p in build_paths(workdir) if p in html]
    links = re.findall(rb'\b(?:href|src)="([^"#][^"]*)"', html)
    assert links and all(link.startswith(b"../") for link in links), links[:3]  # the linked HTML: relative


def test_run_json_and_the_run_summary_name_the_model_file_and_the_image_set(tiny_run):
    import hashlib
    import zipfile

    workdir, _ = tiny_run
    run = json.loads((workdir / "results" / "report" / "run.json").read_text())
    model_file = workdir / "results" / "tiny" / "model" / "model.keras"
    analysed = run["models"]["tiny"]["analysed"]
    with zipfile.ZipFile(model_file) as archive:  # the weights inside the archive (its own bytes hold a date)
        assert analysed["weights_sha256"] == hashlib.sha256(archive.read("model.weights.h5")).hexdigest()
    assert analysed["bytes"] == model_file.stat().st_size
    npz = hashlib.sha256((workdir / "results" / "data" / "shapes" / "data.npz").read_bytes()).hexdigest()
    lines = "".join(f"shapes-test-{j:04d}\t{npz}[{j}]\n" for j in range(2))  # the known answer, by hand
    npz_bytes = (workdir / "results" / "data" / "shapes" / "data.npz").stat().st_size
    assert run["images"] == {
        "count": 2,
        "sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "datasets": [{"path": "results/data/shapes/data.npz", "sha256": npz, "bytes": npz_bytes}],
    }
    html = (workdir / "results" / "report" / "report.html").read_text()
    summary = html.split(">Run summary</h1>")[1].split("<h1")[0]
    assert analysed["weights_sha256"] in summary and run["images"]["sha256"] in summary
    log = (workdir / "results" / "logs" / "tiny" / "sensitivity.log").read_text()
    assert "resize: 0 of 2 images resized" in log  # the dataset's images have the model's size
    quality = json.loads((workdir / "results" / "tiny" / "methods" / "quality.json").read_text())
    assert quality["subset"] == "method check: 2 of 2 images"
    assert "Images: method check: 2 of 2 images." in html


def test_rerun_with_nothing_changed_does_nothing(tiny_run):
    workdir, _ = tiny_run
    result = snakemake(workdir, "--configfile", str(TINY), "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
    # the same config with its keys in another order (yaml.safe_dump sorts them): still nothing to do
    (workdir / "sorted.yaml").write_text(yaml.safe_dump(yaml.safe_load(TINY.read_text()), sort_keys=True))
    result = snakemake(workdir, "--configfile", "sorted.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-2000:]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height RGB pixels and holds almost no data (what a decompression bomb
    looks like to a reader before it decodes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def planned_jobs(workdir: Path, configfile: str) -> list[str]:
    """The rules of the jobs a dry run plans, one entry per job."""
    plan = snakemake(workdir, "--configfile", configfile, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    lines = plan.stdout.splitlines()
    return [line.split()[-1].rstrip(":") for line in lines if line.startswith(("rule ", "localrule "))]


def test_a_saved_model_on_photos_leaves_the_corrupt_ones_out_and_an_added_image_redoes_one_shard(tiny_run):
    """Two README journeys in one run: a .keras file as the model (tiny_run's, loaded), on a folder of
    photos with a corrupt file and a decompression bomb beside test images of the dataset. The
    unreadable photos are left out and named while the rest completes (--keep-going); then one more
    image reruns one shard only, and a changed photo reruns its shard."""
    from skimage import data as skdata

    workdir, _ = tiny_run
    folder = workdir / "photos"
    folder.mkdir()
    Image.fromarray(skdata.coffee()).save(folder / "coffee.png")  # resized to 28x28 by the workflow
    Image.fromarray(skdata.camera()).save(folder / "camera.png")  # grayscale: converted, with a note
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "bomb.png").write_bytes(png_header_only(20000, 20000))  # 400 M pixels: a decompression bomb
    cfg = yaml.safe_load(TINY.read_text())
    cfg["models"] = {
        "mine": {
            "source": "load",
            "path": "results/tiny/model/model.keras",
            "class_names": ["circle", "square", "triangle"],
        }
    }
    cfg["images"] = [{"folder": "photos"}, {"dataset": "shapes", "count": 3}]  # 7 images, 4 per job: 2 shards
    cfg["images_per_job"] = 4
    cfg["heatmaps"] = FEW_HEATMAPS  # what is checked here is the images and the shards (tiny_run checks the methods)
    cfg.update(NO_NEW_MEASURES)
    cfg["filters"] = {"n_filters": 2, "steps": 2, "regularized": {"steps": 0}}
    (workdir / "mine.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(workdir, "--configfile", "mine.yaml", "--keep-going")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]  # the unreadable images are left out, the study completes
    info = json.loads((workdir / "results" / "mine" / "model" / "info.json").read_text())
    assert info["source"] == "load" and info["class_names"] == ["circle", "square", "triangle"]
    assert (workdir / "results" / "report" / "report.pdf").is_file()
    logs = "".join(p.read_text() for p in (workdir / "results" / "logs" / "mine").glob("measure_*.log"))
    assert "cannot read image photos/broken.png" in logs
    images = (workdir / "results" / "mine" / "sensitivity" / "images.csv").read_text()
    assert "broken" in images and "cannot read image photos/broken.png" in images
    for good in ("coffee", "camera"):
        assert (workdir / "results" / "mine" / "exemplars" / good / "sheet.json").is_file()
    assert not (workdir / "results" / "mine" / "exemplars" / "broken").exists()
    assert (
        "bomb" in images and "cannot read image photos/bomb.png: more than twice the limit of 89478485 pixels" in images
    )
    html = (workdir / "results" / "report" / "report.html").read_text()
    assert "could not be read: bomb, broken" in html
    # the 600x400 coffee photo was stretched to the square input: warned in the run summary
    warnings = html.split('<h3 id="warnings">Warnings</h3>')[1]
    assert "1 of 5 images were stretched" in warnings and "(up to 1.50x)" in warnings
    sensitivity_log = (workdir / "results" / "logs" / "mine" / "sensitivity.log").read_text()  # coffee and camera
    assert "resize: 2 of 5 images resized (stretch); see results/mine/sensitivity/images.csv" in sensitivity_log
    camera = json.loads((workdir / "results" / "mine" / "exemplars" / "camera" / "summary.json").read_text())
    assert any("converted to RGB" in n for n in camera["notes"])
    assert any("resized from 512x512 to 28x28" in n for n in camera["notes"])

    cfg["images"][1]["count"] = 4  # 8 images, still 2 shards: one of them gains the image
    (workdir / "more.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(workdir, "more.yaml")
    assert jobs.count("measure") == 1, jobs
    assert "load_model" not in jobs and "model_extras_loaded" not in jobs, jobs
    # image files are not Snakemake inputs (10,000 of them slow its scheduling), but a changed file
    # still reruns its shard: its stamp is in the job's params
    Image.fromarray(skdata.coffee()[::-1]).save(folder / "coffee.png")
    jobs = planned_jobs(workdir, "mine.yaml")
    assert jobs.count("measure") == 1 and "load_model" not in jobs, jobs
    # a model's own analysis setting (its shard size here: one shard of 8) redoes the analysis, not the load;
    # the training views' settings do not redo a loaded model's extras
    cfg["models"]["mine"]["images_per_job"] = 8
    cfg["evolution"] = {"image": 1}
    (workdir / "own.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(workdir, "own.yaml")
    assert jobs.count("measure") == 1 and "load_model" not in jobs and "model_extras_loaded" not in jobs, jobs


def test_bad_config_fails_before_any_job(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["models"]["tiny"]["epochs"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "bad config: config.models.tiny.epochs: 0 is less than the minimum of 1" in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_bad_config_is_one_line_without_snakemakes_frame_and_suggests_the_near_miss(tmp_path, dry):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["transfroms"] = cfg.pop("transforms", [])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--configfile", "bad.yaml", *dry)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("bad config: config: unknown key(s) 'transfroms'")
    assert "(did you mean 'transforms'?)" in lines[0]
    for frame in ("WorkflowError", "Traceback", "File ", "common.smk"):
        assert frame not in result.stderr + result.stdout


def test_training_views_come_from_the_saved_checkpoints_and_tensorboard_reads_the_events(tiny_run):
    from convlens.tblog import read_events

    workdir, _ = tiny_run
    model_dir = workdir / "results" / "tiny"
    evolution = json.loads((model_dir / "evolution" / "evolution.json").read_text())
    # 1 epoch: the configured epochs past it are dropped, the last one is kept
    assert evolution["epochs"] == [1] and evolution["checkpoints"] == ["epoch_001.weights.h5"]
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("*.h5")) == evolution["checkpoints"]
    for name in [evolution["kernels"]["e001"], evolution["embedding"]["file"]] + [
        files["e001"] for files in evolution["maps"].values()
    ]:
        assert (model_dir / "evolution" / "figures" / name).is_file()
    assert evolution["embedding"]["method"] == "tsne" and evolution["embedding"]["points"] > 0
    events = read_events(model_dir / "tensorboard")
    assert events["reader"] == "tensorboard"  # read with TensorBoard's own EventAccumulator
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(events["scalars"])
    history = (model_dir / "model" / "history.csv").read_text().splitlines()
    assert [step for step, _ in events["scalars"]["loss"]] == list(range(1, len(history)))
    assert {"kernels/block1_conv1", "feature_maps/block1_conv1"} <= set(events["images"])
    filters = json.loads((model_dir / "filters" / "filters.json").read_text())
    for layer in filters["layers"]:
        reg = layer["regularized"]
        assert (model_dir / "filters" / "figures" / reg["file"]).is_file()
        assert set(reg["mean"]) == {"noise", "plain_clipped", "plain_drawn", "regularized"}


def test_a_dry_run_over_ten_thousand_images_plans_jobs_per_shard_not_per_image(tmp_path):
    """The DAG does not grow with the images: 10,000 images are a few measure shards per model, sized by the
    model's cost (images_per_job: auto; convlens.model_cost), and one job per model for everything else
    (benchmarks/ times it); a model with images_per_job of its own gets its own count."""
    from convlens.config import shard_count, validate
    from convlens.model_cost import START_SECONDS, images_per_job, study_seconds_per_image

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["datasets"]["shapes"]["n_per_class"] = 12000
    cfg["images"] = [{"dataset": "shapes", "count": 10000}]
    cfg["models"] = {
        "shapes_cnn": cfg["models"]["shapes_cnn"],
        "wide": {**cfg["models"]["shapes_cnn"], "images_per_job": 1024},  # a number of its own: 16 shards
    }
    cfg["heatmaps"]["methods"] = ["gradcam"]
    cfg["cka"] = {"enabled": False}  # with CKA on, every model would get the largest count (test_model_cost.py)
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--configfile", "big.yaml", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:] if line.strip()}
    checked = validate(cfg)
    auto = images_per_job(checked["models"]["shapes_cnn"], checked)
    work = auto * study_seconds_per_image(checked["models"]["shapes_cnn"], checked)
    assert 5 * START_SECONDS <= work <= 20 * START_SECONDS  # a shard carries about ten starts of work
    assert counts["measure"] == shard_count(10000, auto) + 16 and counts["measure"] <= 40, counts
    assert counts["draw"] == 2 and counts["total"] <= 80, counts


# The console's budget (issue 23: the default `make report` prints at most 200 lines; 35 jobs today): Snakemake's
# plan (its job table) and a few lines of its own, then per job at most this many lines: Snakemake's
# "n of N steps (x%) done" and the job's result, progress (at most one every 10 s) and warning lines.
CONSOLE_LINES_PER_JOB = 4
CONSOLE_LINES_FIXED = 12


def test_the_console_has_a_line_per_job_and_the_results_while_the_logs_keep_the_detail(tiny_run):
    workdir, result = tiny_run
    text = result.stdout + result.stderr
    console = text.splitlines()
    steps = [line for line in console if re.fullmatch(r"\d+ of \d+ steps \(\d+%\) done", line)]
    jobs = int(steps[-1].split()[2])
    assert len(steps) == jobs and steps[-1].startswith(f"{jobs} of {jobs} steps"), steps
    plan = text.split("Job stats:")[1].split("\n\n")[0].splitlines()
    assert len(console) - len(plan) <= CONSOLE_LINES_FIXED + CONSOLE_LINES_PER_JOB * jobs, text
    # Snakemake's rule blocks and job lines are in its complete log, not on the console
    assert not [line for line in console if "Finished jobid" in line or line.startswith(("rule ", "    output:"))]
    complete = "".join(p.read_text() for p in (workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert "Finished jobid" in complete and "rule train_model:" in complete
    # the per-epoch lines and TensorFlow's NodeDef notice stay in the rule's log; the result is on the console
    train_log = (workdir / "results" / "logs" / "tiny" / "train.log").read_text()
    assert " INFO epoch 1/1 loss " in train_log and " INFO epoch " not in text
    assert "NodeDef" not in text and "INFO trained tiny in " in text
