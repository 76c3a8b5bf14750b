"""convlens.lean_import: TensorFlow's import leaves scikit-learn out; scikit-learn still imports after it."""

import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow  # two fresh interpreters, each importing TensorFlow

PROBE = """
import sys
import convlens, tensorflow, keras
print("after tensorflow:", "sklearn" in sys.modules)
from sklearn.manifold import TSNE
print("tsne:", TSNE.__name__)
import keras.src.wrappers.fixes as fixes
print("keras wrappers see:", fixes.sklearn)
"""


def test_tensorflow_imports_without_scikit_learn_which_still_imports_afterwards():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["after tensorflow: False", "tsne: TSNE", "keras wrappers see: None"]


def test_scikit_learn_imported_first_is_left_alone():
    probe = "import sklearn, convlens, tensorflow, keras.src.wrappers.fixes as f; print(f.sklearn is sklearn)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"
