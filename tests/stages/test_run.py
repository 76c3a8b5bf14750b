"""run_stage's logging: the console gets convlens's progress and every warning, the rule's log gets
every library's INFO chatter too."""

import logging
import types

import pytest

from convlens.errors import InputError
from convlens.stages.run import LOG_FILE_ONLY, Progress, run_stage


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], root.level = saved
    logging.captureWarnings(False)


def test_third_party_info_goes_to_the_log_file_only(tmp_path, capsys, restore_logging):
    log_file = tmp_path / "logs" / "rule.log"

    def stage():
        logging.getLogger("weasyprint.progress").info("Step 5 - Creating layout - Page 3")
        logging.getLogger("fontTools.subset").info("maxp pruned")
        logging.getLogger("convlens").info("method check: 3 of 10 (0.5/s, about 14 s left)")
        logging.getLogger("matplotlib.font_manager").warning("findfont: Font family not found")
        logging.getLogger("weasyprint").warning('Using fontTools instead of HarfBuzz-Subset for font "%s".', "DejaVu")

    run_stage(str(log_file), stage)
    console = capsys.readouterr().err
    written = log_file.read_text()
    for line in ("Creating layout", "maxp pruned", "method check: 3 of 10", "findfont", "HarfBuzz-Subset"):
        assert line in written
    assert "Creating layout" not in console and "maxp pruned" not in console and "HarfBuzz" not in console
    assert "method check: 3 of 10" in console and "findfont" in console  # ours at INFO, theirs from WARNING
    assert len(console.strip().splitlines()) == 2


def test_a_user_error_is_one_line_on_the_console(tmp_path, capsys, restore_logging):
    def stage():
        raise InputError("config.images: photos/ has no images")

    with pytest.raises(SystemExit):
        run_stage(str(tmp_path / "rule.log"), stage)
    console = capsys.readouterr().err.strip().splitlines()
    assert len(console) == 1 and console[0].endswith("ERROR config.images: photos/ has no images")


def test_progress_reports_counts_and_the_time_left(tmp_path, capsys, restore_logging, monkeypatch):
    clock = iter([0.0, 20.0, 25.0, 40.0])
    monkeypatch.setattr("convlens.stages.run.time", types.SimpleNamespace(time=lambda: next(clock)))

    def stage():
        progress = Progress("layers randomized", 4, every=10)
        progress.advance()  # t = 20: 1 of 4 at 0.05/s -> 60 s left
        progress.advance()  # t = 25: within 10 s of the last line, not logged
        progress.advance(2)  # t = 40: done, the total time

    run_stage(str(tmp_path / "rule.log"), stage)
    console = capsys.readouterr().err
    assert "layers randomized: 1 of 4 (0.1/s, about 60 s left)" in console
    assert "2 of 4" not in console and "layers randomized: 4 of 4 (0.1/s in 40.0 s)" in console


def test_a_log_file_only_record_is_in_the_log_and_not_on_the_console(tmp_path, capsys, restore_logging):
    log_file = tmp_path / "rule.log"

    def stage():
        logging.getLogger("convlens.models").info("epoch %d/%d loss 0.5", 1, 80, extra=LOG_FILE_ONLY)
        logging.getLogger("convlens").info("training: epochs: 80 of 80 (2.0/s in 40.0 s)")

    run_stage(str(log_file), stage)
    console = capsys.readouterr().err
    assert "epoch 1/80 loss 0.5" in log_file.read_text() and "epoch 1/80" not in console
    assert console.strip().endswith("INFO training: epochs: 80 of 80 (2.0/s in 40.0 s)")
    assert len(console.strip().splitlines()) == 1


def test_progress_with_a_summary_to_follow_keeps_its_end_line_in_the_log(
    tmp_path, capsys, restore_logging, monkeypatch
):
    clock = iter([0.0, 20.0, 30.0])
    monkeypatch.setattr("convlens.stages.run.time", types.SimpleNamespace(time=lambda: next(clock)))

    def stage():
        progress = Progress("training: epochs", 2, every=10, summary_follows=True)
        progress.advance()  # t = 20: a progress line, on the console
        progress.advance()  # t = 30: the end line, in the log only
        logging.getLogger("convlens").info("trained m in 30.0 s")

    run_stage(str(tmp_path / "rule.log"), stage)
    console = [line.split(" INFO ")[1] for line in capsys.readouterr().err.strip().splitlines()]
    assert console == ["training: epochs: 1 of 2 (0.1/s, about 20 s left)", "trained m in 30.0 s"]
    assert "training: epochs: 2 of 2 (0.1/s in 30.0 s)" in (tmp_path / "rule.log").read_text()
