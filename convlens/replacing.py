"""The one safe-write mechanism: write to a temporary name beside the target, then rename, so an
interrupted write never leaves a file that looks finished. Plain Python, so every layer can use it
(the stages through ``stages.files``, the figures through ``plots.save_figure``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def replacing(path, suffix: str = ""):
    """Yields a temporary path beside ``path`` (ending in ``suffix``, for writers that go by the
    extension); on success it replaces ``path``, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part" + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
