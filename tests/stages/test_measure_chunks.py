"""A shard's short last chunk is padded to the traced size: one trace, the same rows as without padding."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.slow  # two measure runs of 10 images

from convlens.stages.analysis import Analysis, padded  # noqa: E402
from convlens.stages.measure import measure_shard  # noqa: E402
from tests.helpers import analysis_config, loaded_shapes_model, random_png_sources  # noqa: E402


def test_padded_fills_with_copies_of_the_last_image():
    pixels = np.arange(2 * 2 * 2 * 1, dtype=np.float32).reshape(2, 2, 2, 1)
    out, ids = padded(pixels, ["a", "b"], 4)
    assert ids == ["a", "b", "b", "b"] and out.shape == (4, 2, 2, 1)
    np.testing.assert_array_equal(out[:2], pixels)
    np.testing.assert_array_equal(out[2:], np.repeat(pixels[1:], 2, axis=0))
    same, same_ids = padded(pixels, ["a", "b"], 0)  # one chunk in the shard: no padding
    assert same is pixels and same_ids == ["a", "b"]


def test_short_last_chunk_gives_the_rows_of_unpadded_calls_with_one_trace(tmp_path, monkeypatch):
    """10 images, CKA minibatches of 4, the Lie derivative on: 4 images a call (chunks 4, 4, 2 padded
    to 4) and 8 a call (8, 2 padded to 8) give the same metric rows and CKA sums, each job's step
    traced once; the padding's copies get no heatmap method's pass."""
    from convlens.stages import measure

    model = loaded_shapes_model(tmp_path)
    sources = random_png_sources(tmp_path, 10)
    jobs = {}

    rows = {}  # per call size: the rows the heatmap methods' gradient passes got

    class Kept(Analysis):  # the measure job's own Analysis, kept for its trace count
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            gradient, key = self.explainer._gradient_fn, self.per_call

            def counted(x, targets, rule):
                rows[key] = rows.get(key, 0) + len(x)
                return gradient(x, targets, rule)

            self.explainer._gradient_fn = counted

        def done(self, extra=None):
            jobs[self.per_call] = self
            super().done(extra)

    monkeypatch.setattr(measure, "Analysis", Kept)
    tables, hsic = {}, {}
    for per_call in (4, 8):
        cfg = analysis_config(
            batch_size=4 * per_call,  # 4 transforms: identity, rotate 90, vflip, shift
            heatmaps={"methods": ["gradcam", "saliency"]},
            cka={"enabled": True, "batch_images": 4},
            lie_derivative=True,
            transforms=[{"kind": "rotate", "angle_deg": 90}, {"kind": "vflip"}, {"kind": "shift", "dx": 1, "dy": 0}],
        )
        folder = tmp_path / f"per_call_{per_call}"
        folder.mkdir()
        names = (("metrics", "m.csv.gz"), ("images", "i.csv"), ("pooled", "p.npz"), ("cka", "c.npz"))
        out = {k: str(folder / n) for k, n in names}
        measure_shard(model["model"], model["info"], sources, cfg, 2, out)
        assert jobs[per_call].analyzer._step.experimental_get_tracing_count() == 1
        tables[per_call] = pd.read_csv(out["metrics"]).sort_values(["image", "transform", "param", "layer", "metric"])
        with np.load(out["cka"]) as npz:
            hsic[per_call] = npz["hsic"]
    one, two = tables[4].reset_index(drop=True), tables[8].reset_index(drop=True)
    assert len(one) == len(two) > 0 and set(one["image"]) == {f"im{i}" for i in range(10)}
    assert {"lie_derivative", "equivariance_error"} <= set(one["metric"])
    pd.testing.assert_frame_equal(one.drop(columns="value"), two.drop(columns="value"))
    np.testing.assert_allclose(one["value"], two["value"], rtol=1e-4, atol=1e-5)
    assert {"heatmap_spearman"} <= set(one["metric"])
    assert rows == {4: 10 * 4, 8: 10 * 4}  # saliency: one pass per transformed image, none for the copies
    assert hsic[4].shape[0] == 2  # [0:4], [4:8]; the last 2 images are too few for a minibatch
    np.testing.assert_allclose(hsic[4], hsic[8], rtol=1e-4, atol=1e-8)
