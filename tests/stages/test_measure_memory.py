"""The measure stage keeps per image only what it writes: memory flat in the shard's images."""

import tracemalloc

import numpy as np

from convlens.stages.measure import PooledFeatures


def test_pooled_features_keep_one_row_per_image_not_the_chunk():
    """Chunks of 8 images × 41 transforms: the kept features are each image's reference row (a copy),
    so what stays allocated after the chunks are gone is the n × c rows, not n × 41 × c (a view of
    each chunk's array would keep the whole chunk alive)."""
    n_t, channels, per_chunk, chunks = 41, (32, 64), 8, 40
    rng = np.random.default_rng(0)
    expected = [[] for _ in channels]
    tracemalloc.start()
    try:
        kept = PooledFeatures(["a", "b"])
        before = tracemalloc.take_snapshot()
        for c in range(chunks):
            pooled = [rng.normal(size=(per_chunk * n_t, ch)).astype(np.float32) for ch in channels]
            for i in range(per_chunk):
                rows = [p[i * n_t : (i + 1) * n_t] for p in pooled]
                kept.add(f"im{c}_{i}", rows)
                for j, r in enumerate(rows):
                    expected[j].append(r[0].copy())
            del pooled, rows
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    n = per_chunk * chunks
    rows_bytes = n * sum(channels) * 4
    assert grown < 3 * rows_bytes + 200_000  # the rows, list and array overhead; views would be 41 ×
    arrays = kept.arrays()
    assert arrays["ids"].tolist() == [f"im{c}_{i}" for c in range(chunks) for i in range(per_chunk)]
    for j in range(len(channels)):
        np.testing.assert_array_equal(arrays[f"pooled_{j}"], np.stack(expected[j]))
    # independent check of the premise: a view keeps its chunk (the bug this guards against)
    chunk = np.zeros((per_chunk * n_t, 8), np.float32)
    assert chunk[0:n_t][0].base is not None
