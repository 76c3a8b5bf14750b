import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def cnn():
    """A random 32x32 CNN (tests.helpers.random_cnn32), built once per test session (no test changes it)."""
    pytest.importorskip("keras")
    from tests.helpers import random_cnn32

    return random_cnn32()
