"""CKA in the workflow: the measure shards' per-minibatch sums reduced by rule cka's stage equal a
direct numpy computation on a Keras submodel's activations; the layer × layer comparison too."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from convlens.stages.cka import cka_study, compare_cka  # noqa: E402
from convlens.stages.measure import measure_shard  # noqa: E402
from tests.helpers import analysis_config, loaded_shapes_model, random_png_sources  # noqa: E402
from tests.sensitivity.test_cka import hsic1_loops  # noqa: E402

B = 4  # images per CKA minibatch


def shard_paths(folder):
    names = (("metrics", "metrics.csv.gz"), ("images", "images.csv"), ("pooled", "pooled.npz"), ("cka", "cka.npz"))
    return {k: str(folder / name) for k, name in names}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cka")
    out = loaded_shapes_model(tmp)
    sources = random_png_sources(tmp, 14, "im{:02d}")
    cfg = analysis_config(
        transforms=[{"kind": "hflip"}, {"kind": "vflip"}],
        heatmaps={"methods": ["gradcam"]},
        cka={"batch_images": B},
        batch_size=6,  # 2 images per model call: chunks of one minibatch (4 images)
    )
    shards = [sources[:9], sources[9:]]  # 9 images: minibatches 4, 4 (the last image left out); 5: one of 4
    paths = []
    for k, shard in enumerate(shards):
        paths.append(shard_paths(tmp / f"shard{k}"))
        measure_shard(out["model"], out["info"], shard, cfg, 2, paths[-1])
    study = {
        "table": str(tmp / "cka.csv"),
        "grams": str(tmp / "grams.npz"),
        "layers": str(tmp / "layers.csv"),
        "figure": str(tmp / "cka.png"),
    }
    cka_study([p["cka"] for p in paths], 200, 0.9, 0, study)
    return tmp, out, shards, study


def direct_features(model_path, layers, x):
    model = keras.saving.load_model(model_path, safe_mode=True)
    sub = keras.Model(model.inputs, [model.get_layer(n).output for n in layers])
    return [m.reshape(len(x), -1).astype(np.float64) for m in sub.predict(x, verbose=0)]


def pixels(shard):
    return np.stack([np.asarray(Image.open(s["path"]).convert("RGB")) for s in shard]).astype("float32") / 255.0


def test_cka_from_the_shard_sums_equals_a_direct_computation(setup):
    tmp, out, shards, study = setup
    table = pd.read_csv(study["table"])
    layers = list(dict.fromkeys(table["layer"]))
    assert set(table["transform"]) == {"identity", "hflip", "vflip"}
    assert (table["minibatches"] == 3).all() and (table["images"] == 12).all()
    sums = {}
    for shard in shards:
        x = pixels(shard)
        flips = {"identity": x, "hflip": x[:, :, ::-1], "vflip": x[:, ::-1]}
        feats = {t: direct_features(out["model"], layers, v) for t, v in flips.items()}
        for start in range(0, len(shard) - B + 1, B):
            rows = slice(start, start + B)
            for t, maps in feats.items():
                for j, layer in enumerate(layers):
                    X, Y = feats["identity"][j][rows], maps[j][rows]
                    K, L = X @ X.T, Y @ Y.T
                    s = sums.setdefault((layer, t), np.zeros(3))
                    s += [hsic1_loops(K, L), hsic1_loops(K, K), hsic1_loops(L, L)]
    for row in table.itertuples():
        kl, kk, ll = sums[(row.layer, row.transform)]
        assert row.cka == pytest.approx(kl / np.sqrt(kk * ll), rel=1e-4, abs=1e-5)
        assert row.ci_low <= row.cka + 1e-6 and row.cka <= row.ci_high + 1e-6
    identity = table[table["transform"] == "identity"]
    assert np.allclose(identity["cka"], 1.0, atol=1e-5)
    assert (tmp / "cka.png").stat().st_size > 0 and (tmp / "cka.svg").exists()
    structure = pd.read_csv(study["layers"])
    assert structure["layer"].tolist() == layers
    assert structure.set_index("layer").loc["block1_pool", "stride"] == 2


def test_layer_by_layer_cka_of_a_model_with_itself(setup):
    """The same model twice: the diagonal is 1 and every entry equals the direct computation."""
    tmp, out, shards, study = setup
    result = {k: str(tmp / f"cmp_{k}") for k in ("table", "pairs", "manifest")}
    result["figure"] = str(tmp / "cmp.png")
    grams = {"m": study["grams"], "twin": study["grams"]}
    compare_cka(grams, {"m": study["layers"], "twin": study["layers"]}, "m", {}, result)
    table = pd.read_csv(result["table"])
    twin = table[table["model"] == "twin"]
    same = twin[twin["layer"] == twin["reference_layer"]]
    assert np.allclose(same["cka"], 1.0, atol=1e-6)
    pairs = pd.read_csv(result["pairs"])
    assert (pairs["layer"] == pairs["reference_layer"]).all() and (pairs["how"] == "name").all()
    x = np.concatenate([pixels(s)[: len(s) // B * B] for s in shards])
    layers = list(dict.fromkeys(table["layer"]))
    feats = direct_features(out["model"], layers, x)
    starts = [0, 4, 8]
    for a, b in ((0, 3), (2, 7)):
        Xs = [feats[a][s : s + B] for s in starts]
        Ys = [feats[b][s : s + B] for s in starts]
        kl = sum(hsic1_loops(X @ X.T, Y @ Y.T) for X, Y in zip(Xs, Ys, strict=True))
        kk = sum(hsic1_loops(X @ X.T, X @ X.T) for X in Xs)
        ll = sum(hsic1_loops(Y @ Y.T, Y @ Y.T) for Y in Ys)
        got = twin[(twin["reference_layer"] == layers[a]) & (twin["layer"] == layers[b])]["cka"].item()
        assert got == pytest.approx(kl / np.sqrt(kk * ll), rel=1e-4)
