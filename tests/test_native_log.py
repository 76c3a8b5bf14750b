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


NODEDEF = (
    b"E0000 00:00:1796602365.647508    2033 node_def_util.cc:682] NodeDef mentions attribute "
    b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset> This may be expected "
    b"if your graph generating binary is newer  than this binary. Unknown attributes will be ignored.\n"
)
REAL_ERROR = b"E0000 00:00:1796272345.713587    2099 gpu.cc:99] an error\n"


def test_console_errors_keeps_native_errors_but_the_log_only_ones_and_drops_the_python_records():
    text = b"2026-12-07 00:12:48,372 INFO epoch 4/4 loss 1.0\n" + NODEDEF + REAL_ERROR + CHATTER
    assert native_log.console_errors(text) == REAL_ERROR + REAL_ERROR  # the one above, and CHATTER's
    assert native_log.console_errors(NODEDEF) == b""
    assert native_log.console_errors(REAL_ERROR.rstrip(b"\n")) == REAL_ERROR  # a last line without its newline


def test_native_lines_go_to_the_log_and_only_real_errors_also_to_the_console(tmp_path, capfd):
    log_path = tmp_path / "logs" / "rule.log"
    log_path.parent.mkdir()
    log_path.write_text("left from an earlier run\n")
    with native_log.native_stderr_into(str(log_path)):
        os.write(2, NODEDEF + REAL_ERROR)
        print("python's own stderr", file=sys.stderr)  # not native: the console, at once
        with open(log_path, "a") as log:
            log.write("a record of the log handler\n")
        os.write(2, b"I0000 00:00:1796272345.5 2099 port.cc:153] an info line\n")
    os.write(2, b"after\n")
    console = capfd.readouterr().err
    assert console == "python's own stderr\n" + REAL_ERROR.decode() + "after\n"
    assert log_path.read_bytes() == NODEDEF + REAL_ERROR + b"a record of the log handler\n" + (
        b"I0000 00:00:1796272345.5 2099 port.cc:153] an info line\n"
    )


def test_without_a_log_path_nothing_is_redirected(capfd):
    with native_log.native_stderr_into(None):
        os.write(2, NODEDEF)
    assert capfd.readouterr().err == NODEDEF.decode()
