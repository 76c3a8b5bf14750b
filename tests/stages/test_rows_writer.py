"""measure's metric rows written chunk by chunk give the same CSV text as the whole table at once,
and the same bytes for the same chunks; no rows: the header alone."""

import gzip
from contextlib import ExitStack

import numpy as np
import pandas as pd

from convlens.sensitivity.metrics import COLUMNS
from convlens.stages.measure import FLOAT_FORMAT, RowsWriter


def frames_of(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        pd.DataFrame(
            [{"image": f"im{i}", "transform": "rotate", "param": "15", "layer": "c", "metric": "m", "value": v}] * 3,
            columns=COLUMNS,
        ).assign(value=rng.normal(size=3) * 1e3)
        for i, v in enumerate(rng.normal(size=n))
    ]


def write(path, chunks):
    with ExitStack() as stack:
        writer = RowsWriter(str(path), stack)
        for chunk in chunks:
            writer.write(list(chunk))
        writer.close()
    return path.read_bytes()


def test_chunked_rows_are_the_whole_table(tmp_path):
    frames = frames_of(7)
    whole = pd.concat(frames, ignore_index=True).to_csv(index=False, float_format=FLOAT_FORMAT)
    first = write(tmp_path / "a.csv.gz", [frames[:2], frames[2:3], frames[3:]])
    assert gzip.decompress(first).decode() == whole
    assert write(tmp_path / "a.csv.gz", [frames[:2], frames[2:3], frames[3:]]) == first  # same bytes
    back = pd.read_csv(tmp_path / "a.csv.gz")
    assert len(back) == 21 and np.allclose(back["value"], pd.concat(frames)["value"], rtol=1e-6)
    assert gzip.decompress(write(tmp_path / "e.csv.gz", [])).decode() == ",".join(COLUMNS) + "\n"
    assert len(pd.read_csv(tmp_path / "e.csv.gz")) == 0
