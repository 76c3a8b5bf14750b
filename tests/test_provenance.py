"""Model and image-set digests (convlens.provenance) against an independent computation (sha256sum)."""

import hashlib
import shutil
import subprocess

from convlens.provenance import file_digest, image_set_digest, model_digests


def sha256sum(path):
    if shutil.which("sha256sum") is None:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]


def test_file_digest_matches_sha256sum_across_chunks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 9000)  # 2.2 MiB: three 1 MiB chunks
    found = file_digest(path)
    assert found == {"path": str(path), "sha256": sha256sum(path), "bytes": 256 * 9000}
    (tmp_path / "empty").write_bytes(b"")
    assert file_digest(tmp_path / "empty")["sha256"] == hashlib.sha256(b"").hexdigest()


def test_model_digests_name_the_analysed_file_and_the_users(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for m in ("t", "f", "a"):
        (tmp_path / "results" / m / "model").mkdir(parents=True)
        (tmp_path / "results" / m / "model" / "model.keras").write_bytes(m.encode() * 10)
    (tmp_path / "mine.keras").write_bytes(b"user file")
    config = {
        "models": {
            "t": {"source": "train"},
            "f": {"source": "load", "path": "mine.keras"},
            "a": {"source": "load", "application": "VGG16", "weights": "imagenet"},
        }
    }
    found = model_digests(config, ["t", "f", "a"])
    assert found["t"]["analysed"]["sha256"] == sha256sum(tmp_path / "results/t/model/model.keras")
    assert found["t"]["analysed"]["bytes"] == 10 and "file" not in found["t"]
    assert found["f"]["file"]["sha256"] == sha256sum(tmp_path / "mine.keras") and found["f"]["file"]["bytes"] == 9
    assert found["a"]["application"] == "VGG16" and found["a"]["weights"] == "imagenet"


def test_a_keras_archive_is_described_by_its_weights_not_its_save_date(tmp_path):
    """Two archives with the same weights and another save date: one weights digest (that of the
    member, by hand), different file digests; the size is the file's."""
    import zipfile

    from convlens.provenance import analysed_digest

    for name, date in (("a.keras", "2026-12-06@20:59:33"), ("b.keras", "2026-12-06@21:27:58")):
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            archive.writestr("metadata.json", '{"date_saved": "%s"}' % date)
            archive.writestr("model.weights.h5", b"the same weights")
    a, b = analysed_digest(tmp_path / "a.keras"), analysed_digest(tmp_path / "b.keras")
    assert a["weights_sha256"] == b["weights_sha256"] == hashlib.sha256(b"the same weights").hexdigest()
    assert sha256sum(tmp_path / "a.keras") != sha256sum(tmp_path / "b.keras")
    assert a["bytes"] == (tmp_path / "a.keras").stat().st_size and "sha256" not in a


def test_image_set_digest_is_the_sorted_ids_and_contents(tmp_path):
    (tmp_path / "a.png").write_bytes(b"aaa")
    (tmp_path / "b.png").write_bytes(b"bbb")
    (tmp_path / "d.npz").write_bytes(b"dataset")
    images = [
        {"id": "b", "path": str(tmp_path / "b.png")},
        {"id": "a", "path": str(tmp_path / "a.png")},
        {"id": "d-0003", "path": None, "dataset_npz": str(tmp_path / "d.npz"), "index": 3},
    ]
    found = image_set_digest(images)
    # the known answer, written out by hand
    npz = hashlib.sha256(b"dataset").hexdigest()
    lines = [
        f"a\t{hashlib.sha256(b'aaa').hexdigest()}\n",
        f"b\t{hashlib.sha256(b'bbb').hexdigest()}\n",
        f"d-0003\t{npz}[3]\n",
    ]
    assert found["sha256"] == hashlib.sha256("".join(lines).encode()).hexdigest() and found["count"] == 3
    assert found["datasets"][0]["sha256"] == npz
    assert image_set_digest(images[::-1])["sha256"] == found["sha256"]  # order of the config does not matter
    (tmp_path / "a.png").write_bytes(b"aab")  # one changed byte changes the set's digest
    assert image_set_digest(images)["sha256"] != found["sha256"]


def test_an_unreadable_image_is_counted_as_missing(tmp_path):
    found = image_set_digest([{"id": "x", "path": str(tmp_path / "gone.png")}])
    assert found["sha256"] == hashlib.sha256(b"x\tmissing\n").hexdigest()
