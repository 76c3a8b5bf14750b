"""Training through run_stage, as rule train_model runs it: the per-epoch lines and TensorFlow's
NodeDef notice (Keras's tf.data input pipeline) are in the rule's log and never on the console."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TRAIN = """
import sys
from convlens import models
from convlens.data import make_shapes
from convlens.stages.run import log, run_stage

spec = {"source": "train", "architecture": "shapes_cnn", "epochs": 3, "batch_size": 16, "learning_rate": 0.001,
        "validation_fraction": 0.2, "augment": {"shift_px": 2, "hflip": True}}

def stage():
    models.train(spec, make_shapes(n_per_class=8, seed=1), seed=0)
    log.info("trained")

run_stage(sys.argv[1], stage)
"""


@pytest.mark.slow
def test_an_augmented_training_prints_no_epoch_line_and_no_nodedef_line_and_logs_both(tmp_path):
    log_path = tmp_path / "logs" / "train.log"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(log_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = log_path.read_text()
    console = done.stdout + done.stderr
    assert [line.split(" INFO ")[-1] for line in console.splitlines()] == ["trained"]
    epochs = [line.split(" INFO ")[-1].split(" loss ")[0] for line in log.splitlines() if " INFO epoch " in line]
    assert epochs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    # TensorFlow 2.21 with Keras 3 prints it while training: should a release stop, this fails,
    # and native_log.LOG_ONLY can go
    assert "NodeDef mentions attribute use_unbounded_threadpool" in log
    assert log.rstrip().endswith("INFO trained")
