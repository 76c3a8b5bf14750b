"""TensorFlow's import without scikit-learn's.

``import tensorflow`` (2.21) imports Keras, and Keras's scikit-learn wrappers (``keras.wrappers``)
import scikit-learn when it is installed: about 0.5 s of the 4.5 s a TensorFlow start costs each job,
for classes convlens never uses (convlens imports scikit-learn itself only for t-SNE and the digits
dataset). ``install()`` puts a finder on ``sys.meta_path`` that answers "not installed" to an
``import sklearn`` made by ``keras.src.wrappers`` (which then defines its own stand-ins, as it does
without scikit-learn) and to no other import: scikit-learn still imports everywhere else, before or
after TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED_FOR = "keras.src.wrappers"


def importer_is_keras_wrappers() -> bool:
    """Whether the import being resolved was started by a module of ``keras.src.wrappers``."""
    frame = sys._getframe(1)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(BLOCKED_FOR):
            return True
        frame = frame.f_back
    return False


class _SkipScikitLearnForKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" and importer_is_keras_wrappers():
            raise ModuleNotFoundError("scikit-learn is not imported for keras.wrappers (convlens.lean_import)")
        return None


def install() -> None:
    """Once per process; nothing when TensorFlow or scikit-learn is already imported."""
    if any(isinstance(f, _SkipScikitLearnForKeras) for f in sys.meta_path):
        return
    if "tensorflow" in sys.modules or "sklearn" in sys.modules:
        return
    sys.meta_path.insert(0, _SkipScikitLearnForKeras())
