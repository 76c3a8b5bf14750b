"""TF_CPP_MIN_LOG_LEVEL for the lines TensorFlow's C++ prints while it is imported.

TensorFlow 2.21 writes ``WARNING: All log messages before absl::InitializeLog() is called are
written to STDERR`` and an ``I0000 ... port.cc:153] oneDNN custom operations are on`` line twice
while ``import tensorflow`` runs, whatever TF_CPP_MIN_LOG_LEVEL says: absl's logging is not set
up yet. ``install()`` puts a finder on ``sys.meta_path`` that, for the one ``import tensorflow``,
points the process's stderr (file descriptor 2) at a temporary file, and afterwards writes back
everything but the absl lines below the level TF_CPP_MIN_LOG_LEVEL asks for (INFO at 1, WARNING
too at 2) and that header. Nothing else is touched: the redirect lasts only for that import, and
what it caught is written back when the import ends, also when it fails.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

ABSL_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] ")
ABSL_HEADER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def min_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def filtered(text: bytes, level: int) -> bytes:
    """``text`` without the absl lines of a severity below ``level`` (0 INFO, 1 WARNING, 2 ERROR) and,
    at a level above 0, without absl's "before InitializeLog" header."""
    kept = []
    for line in text.splitlines(keepends=True):
        match = ABSL_LINE.match(line)
        if match and SEVERITY[match.group(1)] < level:
            continue
        if level > 0 and line.rstrip(b"\r\n") == ABSL_HEADER:
            continue
        kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def native_stderr_filtered(level: int):
    """While inside, file descriptor 2 writes to a temporary file; on leaving, what was written goes
    to the real stderr through ``filtered``."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            rest = filtered(caught.read(), level)
            if rest:
                os.write(2, rest)


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` inside ``native_stderr_filtered``; then removes itself."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, level = spec.loader, min_level()
        run = loader.exec_module

        def exec_module(module):
            with native_stderr_filtered(level):
                run(module)

        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Filter TensorFlow's import-time C++ lines (when TF_CPP_MIN_LOG_LEVEL asks for it and
    TensorFlow is not imported yet)."""
    if (
        min_level() > 0
        and "tensorflow" not in sys.modules
        and not any(isinstance(f, QuietTensorFlowImport) for f in sys.meta_path)
    ):
        sys.meta_path.insert(0, QuietTensorFlowImport())
