"""Workflow runs shared by the integration tests: the Snakemake command line, the tiny config, and the
small multi-model study that tests/conftest.py's session fixture ``default_like_run`` runs once."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / ".test" / "config" / "config.yaml"
# what the default_like_run folder holds besides results/: the config it ran and Snakemake's console
STUDY_CONFIG, CONSOLE_OUT, CONSOLE_ERR = "study.yaml", "console.stdout.txt", "console.stderr.txt"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on this checkout's Snakefile with 2 cores, run in ``workdir``; its console captured."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=workdir)


def default_like_config() -> dict:
    """The tiny config with a second model: the same CNN trained with another step size (tiny2), so
    the comparison rule and chapter run. Grad-CAM only, no method check, a few filter steps, the
    evolution at epoch 1, 500 bootstrap resamples, a blur (photometric) beside the geometric transforms, and
    the summary PDF (config report.detail: summary) as the default study writes it."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["models"]["tiny2"] = {**cfg["models"]["tiny"], "learning_rate": 0.01}  # the same CNN, another step size
    cfg["heatmaps"] = {"methods": ["gradcam"], "quality_images": 0}
    cfg["filters"] = {"n_filters": 2, "steps": 2, "regularized": {"steps": 0}}
    cfg["evolution"] = {"epochs": [1]}
    cfg["comparison"] = {"n_boot": 500}
    cfg["transforms"] = [*cfg["transforms"], {"kind": "blur", "sigma_px": 1.0}]  # photometric: nothing drawn for it
    cfg["report"] = {**cfg.get("report", {}), "detail": "summary"}  # the default PDF, checked page by page
    cfg["images_per_job"] = 2  # one measure job per model (the tiny run and the saved-model test check shards)
    return cfg


def run_default_like(workdir: Path) -> Path:
    """Runs default_like_config() in ``workdir`` (a fresh folder) and keeps its config and console
    beside results/; fails with the console's tail when Snakemake fails."""
    (workdir / STUDY_CONFIG).write_text(yaml.safe_dump(default_like_config()))
    result = snakemake(workdir, "--configfile", str(workdir / STUDY_CONFIG))
    (workdir / CONSOLE_OUT).write_text(result.stdout)
    (workdir / CONSOLE_ERR).write_text(result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir
