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


# TensorFlow's runtime lines that say nothing a user can act on: into the rule's log, never the console.
# "NodeDef mentions attribute use_unbounded_threadpool which is not in the op definition ... Unknown
# attributes will be ignored": an ERROR line about a map of Keras's tf.data input pipeline, one to three
# per training job (TensorFlow 2.21, Keras 3); the attribute is ignored and nothing is wrong.
LOG_ONLY = (re.compile(rb"NodeDef mentions attribute \w+ which is not in the op definition"),)


def console_errors(text: bytes) -> bytes:
    """The lines of ``text`` the console should still get: absl ERROR and FATAL lines that are not
    ``LOG_ONLY``. (``text`` also holds the log's own Python records: those are not absl lines.)"""
    kept = []
    for line in text.splitlines(keepends=True):
        match = ABSL_LINE.match(line)
        if match and SEVERITY[match.group(1)] >= 2 and not any(p.search(line) for p in LOG_ONLY):
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(kept)


@contextlib.contextmanager
def native_stderr_into(log_path: str | None):
    """While inside, what native code writes to file descriptor 2 (TensorFlow's C++ runtime logs)
    is appended to ``log_path``; Python's ``sys.stderr`` keeps the console. On leaving, also after
    an exception, the native ERROR lines that are not ``LOG_ONLY`` are written to the console too.

    ``log_path`` is emptied on entry: write to it in append mode (``logging.FileHandler(mode="a")``).
    A crash leaves everything native in the log. ``None``: nothing is redirected.
    """
    if not log_path:
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    open(log_path, "wb").close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.flush()
    saved = os.dup(2)
    swap = _writes_to_fd(sys.stderr, 2)
    python_stderr = sys.stderr
    if swap:  # Python's own writes (the console log handler, tracebacks) keep going to the console
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    target = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if swap:  # the console stream is left open: a log handler may still hold it
            sys.stderr = python_stderr
        with open(log_path, "rb") as log:
            shown = console_errors(log.read())
        if shown:
            os.write(2, shown)


def _writes_to_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, OSError):
        return False
