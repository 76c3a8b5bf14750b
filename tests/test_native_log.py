"""TensorFlow's import-time C++ lines follow TF_CPP_MIN_LOG_LEVEL (convlens.native_log)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convlens import native_log

ROOT = Path(__file__).resolve().parent.parent
CHATTER = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796272345.513587    2099 port.cc:153] oneDNN custom operations are on.\n"
    b"W0000 00:00:1796272345.613587    2099 cpu.cc:12] a warning\n"
    b"E0000 00:00:1796272345.713587    2099 gpu.cc:99] an error\n"
    b"Traceback (most recent call last): something real\n"
)


def test_filtered_drops_the_absl_lines_below_the_level_and_keeps_the_rest():
    assert native_log.filtered(CHATTER, 0) == CHATTER
    assert native_log.filtered(CHATTER, 1) == CHATTER.split(b"\n", 2)[2]  # INFO and the header gone
    assert native_log.filtered(CHATTER, 2) == (
        b"E0000 00:00:1796272345.713587    2099 gpu.cc:99] an error\n"
        b"Traceback (most recent call last): something real\n"
    )


def test_the_redirect_gives_back_stderr_and_what_was_written_to_it(capfd):
    with native_log.native_stderr_filtered(2):
        os.write(2, CHATTER)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "a warning" not in err and "InitializeLog" not in err
    assert "an error" in err and "something real" in err and err.endswith("after\n")


@pytest.mark.slow
def test_importing_tensorflow_after_convlens_prints_none_of_its_start_up_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    code = "import convlens, sys, tensorflow; print('imported', file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.strip() == "imported", result.stderr[-2000:]
