import fcntl
import os
from collections import Counter

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def cnn():
    """A random 32x32 CNN (tests.helpers.random_cnn32), built once per test session (no test changes it)."""
    pytest.importorskip("keras")
    from tests.helpers import random_cnn32

    return random_cnn32()


def shared_folder(tmp_path_factory, name: str, make):
    """The folder ``make(folder)`` filled once per test session, also across pytest-xdist workers: the first
    worker to ask runs it under a file lock in the session's common temporary folder, the others wait and
    reuse it (a failed run fails each of them with its message)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # <session>/popen-gwN -> <session>, common to this session's workers
    folder = root / name
    with open(root / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "failed.txt").is_file():
            pytest.fail((folder / "failed.txt").read_text(), pytrace=False)
        if not (folder / "done.txt").is_file():
            folder.mkdir(exist_ok=True)
            try:
                make(folder)
            except BaseException as error:
                (folder / "failed.txt").write_text(f"{name}: {error}"[-8000:])
                raise
            (folder / "done.txt").write_text("")
    return folder


@pytest.fixture(scope="session")
def default_like_run(tmp_path_factory):
    """A small multi-model study run once per session by Snakemake (tests/runs.py default_like_config):
    the tiny config (.test/config/config.yaml: the shapes dataset, 2 test images, shift (2, 0), rotate
    -90/90 (a sweep), hflip, 1 epoch, seed 7) with two trained models, ``tiny`` and ``tiny2`` (the same
    CNN at learning rate 0.01, the reference is tiny), Grad-CAM only, no method check, 2 filters of 2
    steps, the evolution at epoch 1, the comparison with 500 bootstrap resamples.

    Returns the run's folder: ``results/`` (both models' folders, ``comparison/``, ``report/report.html``,
    ``report/report.pdf``, ``report/run.json``, ``logs/``), ``study.yaml`` (the config it ran) and
    Snakemake's console, ``console.stdout.txt`` and ``console.stderr.txt`` (``done.txt`` marks it finished).
    Read it, never change it: the tests of every file share it (mark them integration); under pytest-xdist
    the workers share one run."""
    from tests.runs import run_default_like

    return shared_folder(tmp_path_factory, "default_like_run", run_default_like)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The files with workflow runs first, then those with slow tests, each tier the files with most such
    tests first, so that under pytest-xdist (make test: --dist loadfile --no-loadscope-reorder, each file
    whole in one worker) the longest start at once. A file's tests keep their order and stay together, so
    its module fixtures run once with or without xdist."""
    heavy, first, kinds = Counter(), {}, {}
    for index, item in enumerate(items):
        path = item.nodeid.split("::")[0]
        heavy[path] += "integration" in item.keywords or "slow" in item.keywords
        first.setdefault(path, index)
        kind = 0 if "integration" in item.keywords else 1 if "slow" in item.keywords else 2
        kinds[path] = min(kind, kinds.get(path, 2))

    def rank(item):
        path = item.nodeid.split("::")[0]
        return kinds[path], -heavy[path], first[path]

    items.sort(key=rank)
