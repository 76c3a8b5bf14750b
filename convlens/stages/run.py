"""Running a stage for a Snakemake script: logging to the rule's log, one-line user errors."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from convlens import native_log
from convlens.errors import InputError

log = logging.getLogger("convlens")


class ConsoleFilter(logging.Filter):
    """What reaches the console: convlens's own records from INFO (progress lines, results), every
    other library's (WeasyPrint, fontTools, matplotlib, absl, TensorFlow ...) from WARNING. The
    rule's log file gets everything from INFO. Warnings about the installation that nothing in a
    run can change (``LOG_ONLY``) go to the log file only, and so do records logged with
    ``extra=LOG_FILE_ONLY`` (detail such as one line per training epoch)."""

    LOG_ONLY = ("Using fontTools instead of HarfBuzz-Subset",)  # WeasyPrint, once per font, every report

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "log_file_only", False):
            return False
        own = record.name == log.name or record.name.startswith(log.name + ".")
        if not own and record.levelno < logging.ERROR and any(s in str(record.msg) for s in self.LOG_ONLY):
            return False
        return record.levelno >= (logging.INFO if own else logging.WARNING)


def setup_logging(log_path: str | None) -> None:
    """Log to the rule's log file (INFO from every library; emptied, then appended to, so that native
    lines written beside it land in order) and to stderr (convlens's INFO, others' WARNING and
    above), with timestamps; TensorFlow's C++ logs from warnings on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow loads its C++ library
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(ConsoleFilter())
    handlers: list[logging.Handler] = [console]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_bytes(b"")
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.captureWarnings(True)  # Python warnings (Keras, numpy) into the log too, once each
    for name in THIRD_PARTY_LOGGERS:  # loggers that set their own level or handler: back to the root's
        other = logging.getLogger(name)
        other.setLevel(logging.NOTSET)
        other.handlers.clear()
        other.propagate = True


# ``log.info(..., extra=LOG_FILE_ONLY)``: to the rule's log file, not the console
LOG_FILE_ONLY = {"log_file_only": True}

# libraries whose loggers would otherwise print INFO (or print through their own handler)
THIRD_PARTY_LOGGERS = (
    "weasyprint",
    "weasyprint.progress",
    "fontTools",
    "matplotlib",
    "PIL",
    "absl",
    "tensorflow",
    "h5py",
)


def run_stage(log_path: str | None, stage, *args, **kwargs) -> None:
    """Run a stage for a Snakemake script: log to the rule's log; a user error ends in one line.

    InputError (bad input: unreadable file, impossible value) is reported as its message alone and
    the job fails; any other exception keeps its traceback, since that is a bug to report.
    TensorFlow's C++ runtime lines go to the log (native_log.native_stderr_into); its errors, bar the
    harmless ones, also reach the console when the stage ends.
    """
    with native_log.native_stderr_into(log_path):
        setup_logging(log_path)
        try:
            stage(*args, **kwargs)
        except InputError as exc:
            log.error("%s", exc)
            raise SystemExit(1) from None
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                log.exception("unexpected failure (a bug: please report it with this log)")
            raise


class Progress:
    """Progress lines for long work: ``what: done of total (rate/s, about N s left)``, logged at most
    every ``every`` seconds and once at the end. ``summary_follows``: the stage logs a line of its own
    when the work is done, so the end line goes to the rule's log only."""

    def __init__(self, what: str, total: int, every: float = 10.0, summary_follows: bool = False):
        self.what, self.total, self.every = what, int(total), every
        self.summary_follows = summary_follows
        self.done = 0
        self.start = self.last = time.time()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self.last < self.every and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        tail = f", about {left:.0f} s left" if self.done < self.total else f" in {now - self.start:.1f} s"
        extra = LOG_FILE_ONLY if self.summary_follows and self.done >= self.total else None
        log.info("%s: %d of %d (%.1f/s%s)", self.what, self.done, self.total, rate, tail, extra=extra)
