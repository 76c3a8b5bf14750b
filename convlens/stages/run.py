"""Running a stage for a Snakemake script: logging to the rule's log, one-line user errors."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from convlens.errors import InputError

log = logging.getLogger("convlens")


def setup_logging(log_path: str | None) -> None:
    """Log to the rule's log file (and stderr), with timestamps."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")


def run_stage(log_path: str | None, stage, *args, **kwargs) -> None:
    """Run a stage for a Snakemake script: log to the rule's log; a user error ends in one line.

    InputError (bad input: unreadable file, impossible value) is reported as its message alone and
    the job fails; any other exception keeps its traceback, since that is a bug to report.
    """
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
    every ``every`` seconds and once at the end."""

    def __init__(self, what: str, total: int, every: float = 10.0):
        self.what, self.total, self.every = what, int(total), every
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
        log.info("%s: %d of %d (%.1f/s%s)", self.what, self.done, self.total, rate, tail)
