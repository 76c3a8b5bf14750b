import os
from collections import Counter

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# session fixtures that run the workflow: every test using one runs in the same pytest-xdist worker
SHARED_RUNS = ("default_like_run",)


@pytest.fixture(scope="session")
def cnn():
    """A random 32x32 CNN (tests.helpers.random_cnn32), built once per test session (no test changes it)."""
    pytest.importorskip("keras")
    from tests.helpers import random_cnn32

    return random_cnn32()


@pytest.fixture(scope="session")
def default_like_run(tmp_path_factory):
    """A small multi-model study run once per session by Snakemake (tests/runs.py default_like_config):
    the tiny config (.test/config/config.yaml: the shapes dataset, 2 test images, shift (2, 0), rotate
    -90/90 (a sweep), hflip, 1 epoch, seed 7) with two trained models, ``tiny`` and ``tiny2`` (the same
    CNN at learning rate 0.01, the reference is tiny), Grad-CAM only, no method check, 2 filters of 2
    steps, the evolution at epoch 1, the comparison with 500 bootstrap resamples.

    Returns the run's folder: ``results/`` (both models' folders, ``comparison/``, ``report/report.html``,
    ``report/report.pdf``, ``report/run.json``, ``logs/``), ``study.yaml`` (the config it ran) and
    Snakemake's console, ``console.stdout.txt`` and ``console.stderr.txt``. Read it, never change it: the
    tests of every file share it (marked integration; under pytest-xdist they run in one worker)."""
    from tests.runs import run_default_like

    return run_default_like(tmp_path_factory.mktemp("default_like"))


def pytest_configure(config):
    # pytest-xdist registers it too; here for a pytest without it (the marks are then unused)
    config.addinivalue_line("markers", "xdist_group(name): the tests of one group run in one xdist worker")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (make test: --dist loadgroup --no-loadscope-reorder) each file runs whole in one
    worker, so its module fixtures run once and in order, and every test of a shared workflow run joins
    that run's worker. The files with workflow runs go first, then those with slow tests, each tier the
    files with most such tests first, so the longest start at once; a file's tests keep their order."""
    group, heavy, first = {}, Counter(), {}
    for index, item in enumerate(items):
        shared = [name for name in SHARED_RUNS if name in item.fixturenames]
        group[item] = shared[0] if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group[item]))
        heavy[group[item]] += "integration" in item.keywords or "slow" in item.keywords
        first.setdefault(group[item], index)
    kinds = {}
    for item in items:
        kind = 0 if "integration" in item.keywords else 1 if "slow" in item.keywords else 2
        kinds[group[item]] = min(kind, kinds.get(group[item], 2))
    # each group stays together, in the order of its first test: module fixtures run once without xdist too
    items.sort(key=lambda item: (kinds[group[item]], -heavy[group[item]], first[group[item]]))
