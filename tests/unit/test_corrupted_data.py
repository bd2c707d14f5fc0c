"""Tests of the -C loaders (official layouts written here at tiny size) and of the resumable generator.

Fixture pixels encode (corruption, severity, index), so a loader that mixes up blocks or order fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gearlib.cli import main
from gearlib.corrupt import CORRUPTIONS, corrupt
from gearlib.corrupt import generate as gen
from gearlib.data import corrupted, load_dataset
from gearlib.data.corrupted import load_corrupted

N = 5  # images per severity block


def write_cifar_c(root: Path, n: int = N, corruptions=CORRUPTIONS, label_dtype=np.uint8) -> np.ndarray:
    """Official-layout CIFAR-10-C fixture; pixel (0,0) = (corruption id, severity, index). Returns labels."""
    root.mkdir(parents=True, exist_ok=True)
    labels = (np.arange(n) * 3 + 1) % 10
    np.save(root / "labels.npy", np.tile(labels, 5).astype(label_dtype))
    for name in corruptions:
        data = np.zeros((5 * n, 32, 32, 3), np.uint8)
        for s in range(1, 6):
            block = data[(s - 1) * n : s * n]
            block[:, :, :, 0] = CORRUPTIONS.index(name)
            block[:, :, :, 1] = s
            block[:, :, :, 2] = np.arange(n)[:, None, None]
        np.save(root / f"{name}.npy", data)
    return labels


def decode(images) -> np.ndarray:
    """(corruption id, severity, index) of each image of a uint8 NCHW tensor."""
    return images[:, :, 5, 7].numpy()


def test_official_layout_blocks_and_labels(tmp_path):
    labels = write_cifar_c(tmp_path / "cifar10-c")
    for name in ("gaussian_noise", "jpeg_compression", "saturate"):
        for severity in range(1, 6):
            data = load_corrupted("cifar10", name, severity, data_dir=tmp_path)
            images, y = data.tensors()
            assert images.shape == (N, 3, 32, 32) and str(images.dtype) == "torch.uint8"
            assert str(y.dtype) == "torch.int64"
            np.testing.assert_array_equal(y.numpy(), labels)
            codes = decode(images)
            assert (codes[:, 0] == CORRUPTIONS.index(name)).all() and (codes[:, 1] == severity).all()
            np.testing.assert_array_equal(codes[:, 2], np.arange(N))
            assert data.origin == "official" and data.severity == severity
            image, label = data[1]
            assert tuple(image.shape) == (3, 32, 32) and label == labels[1]
    first = load_corrupted("cifar10", "fog", 4, data_dir=tmp_path, n_examples=3)
    np.testing.assert_array_equal(decode(first.tensors()[0])[:, 2], [0, 1, 2])


def test_archive_folder_env_variable_and_cifar100(tmp_path, monkeypatch):
    write_cifar_c(tmp_path / "cifar100-c" / "CIFAR-100-C", corruptions=["snow"])
    monkeypatch.setenv("GEARLIB_DATA", str(tmp_path))
    data = load_corrupted("cifar100", "snow", 2)
    assert (decode(data.tensors()[0])[:, 1] == 2).all()
    assert corrupted.available_corruptions("cifar100") == ["snow"]


def test_missing_set_and_bad_requests(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path)
    message = str(err.value)
    assert "2535967" in message and "gearlib corrupt --dataset cifar10" in message
    assert str(tmp_path / "cifar10-c") in message
    with pytest.raises(FileNotFoundError, match="3555552"):
        load_corrupted("cifar100", "fog", 1, data_dir=tmp_path)
    write_cifar_c(tmp_path / "cifar10-c", corruptions=["fog"])
    with pytest.raises(FileNotFoundError, match="holds: fog"):
        load_corrupted("cifar10", "snow", 1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown corruption"):
        load_corrupted("cifar10", "smog", 1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="severity"):
        load_corrupted("cifar10", "fog", 0, data_dir=tmp_path)
    with pytest.raises(ValueError, match="exceeds"):
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path, n_examples=N + 1)
    with pytest.raises(ValueError, match="unknown corrupted dataset"):
        load_corrupted("mnist", "fog", 1, data_dir=tmp_path)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((5 * N, 32, 32), np.uint8), "shape"),
        (np.zeros((5 * N, 32, 32, 3), np.float32), "uint8"),
        (np.zeros((5 * N - 1, 32, 32, 3), np.uint8), "shape"),
        (np.zeros((5 * N, 3, 32, 32), np.uint8), "HWC"),
    ],
)
def test_wrong_files_are_rejected(tmp_path, bad, match):
    root = tmp_path / "cifar10-c"
    write_cifar_c(root, corruptions=["fog"])
    np.save(root / "fog.npy", bad)
    with pytest.raises(ValueError, match=match):
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path)


def test_wrong_labels_are_rejected(tmp_path):
    root = tmp_path / "cifar10-c"
    write_cifar_c(root, corruptions=["fog"])
    np.save(root / "labels.npy", np.zeros(5 * N + 1, np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path)
    np.save(root / "labels.npy", np.arange(5 * N).astype(np.uint8))  # not one vector tiled 5 times
    with pytest.raises(ValueError, match="tiled"):
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path)
    np.save(root / "labels.npy", np.zeros(5 * N, np.float32))
    with pytest.raises(ValueError, match="integer"):
        load_corrupted("cifar10", "fog", 1, data_dir=tmp_path)


def test_npy_files_are_memory_mapped(tmp_path, monkeypatch):
    write_cifar_c(tmp_path / "cifar10-c", corruptions=["fog"])
    calls = []
    real_load = np.load

    def spy(path, *args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(corrupted.np, "load", spy)
    load_corrupted("cifar10", "fog", 3, data_dir=tmp_path)
    assert calls and all(mode == "r" for mode in calls)


# ------------------------------------------------------------------------------ Tiny ImageNet(-C)

WNIDS_FILE_ORDER = ["n0300", "n0100", "n0200"]  # wnids.txt is not sorted


def solid(path: Path, level: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), level, np.uint8)).save(path)


def level_of(wnid: str) -> int:
    return 40 + 60 * WNIDS_FILE_ORDER.index(wnid)


def write_tiny(base: Path) -> None:
    """tiny-imagenet-200 fixture (2 train + 1 val image per class) and Tiny-ImageNet-C for fog severity 2."""
    tiny = base / "tinyimagenet" / "tiny-imagenet-200"
    tiny.mkdir(parents=True)
    (tiny / "wnids.txt").write_text("\n".join(WNIDS_FILE_ORDER) + "\n")
    annotations = []
    for k, wnid in enumerate(WNIDS_FILE_ORDER):
        for j in range(2):
            solid(tiny / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", level_of(wnid))
        solid(tiny / "val" / "images" / f"val_{k}.JPEG", level_of(wnid))
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
        for j in range(3):  # file names in -C are arbitrary: deliberately unrelated to the class
            solid(base / "tinyimagenet-c" / "fog" / "2" / wnid / f"img_{9 - 3 * k - j}.JPEG", level_of(wnid))
    (tiny / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")


def labels_by_wnid(images, labels) -> dict:
    """wnid (recovered from the solid colour) -> set of labels."""
    found = {}
    for image, label in zip(images, labels):
        level = int(image.float().mean())
        wnid = min(WNIDS_FILE_ORDER, key=lambda w: abs(level_of(w) - level))
        found.setdefault(wnid, set()).add(int(label))
    return found


def test_tiny_imagenet_c_labels_agree_with_train_and_val(tmp_path):
    write_tiny(tmp_path)
    expected = {w: {sorted(WNIDS_FILE_ORDER).index(w)} for w in WNIDS_FILE_ORDER}
    c_set = load_corrupted("tinyimagenet", "fog", 2, data_dir=tmp_path)
    images, labels = c_set.tensors()
    assert images.shape == (9, 3, 64, 64)
    assert labels_by_wnid(images, labels) == expected
    assert c_set.classes == sorted(WNIDS_FILE_ORDER)
    for split in ("train", "test"):
        clean = load_dataset("tinyimagenet", split=split, data_dir=tmp_path)
        assert labels_by_wnid(*clean.tensors()) == expected
    # first n examples are class-balanced (round-robin over the classes)
    first = load_corrupted("tinyimagenet", "fog", 2, data_dir=tmp_path, n_examples=3)
    assert sorted(first.tensors()[1].tolist()) == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="fog/3"):
        load_corrupted("tinyimagenet", "fog", 3, data_dir=tmp_path)


def test_tiny_imagenet_c_without_wnids_file_sorts_folders(tmp_path):
    for wnid in WNIDS_FILE_ORDER:
        solid(
            tmp_path / "tinyimagenet-c" / "Tiny-ImageNet-C" / "snow" / "1" / wnid / "a.JPEG", level_of(wnid)
        )
    images, labels = load_corrupted("tinyimagenet", "snow", 1, data_dir=tmp_path).tensors()
    assert labels_by_wnid(images, labels) == {
        w: {sorted(WNIDS_FILE_ORDER).index(w)} for w in WNIDS_FILE_ORDER
    }


# ------------------------------------------------------------------------------ generated sets


def clean_set(n: int = 6, size: int = 32):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    return images, labels


NAMES = ["gaussian_noise", "zoom_blur", "spatter"]


def test_generated_set_round_trips_through_the_loader(tmp_path):
    images, labels = clean_set()
    meta = gen.generate_corrupted_set(images, labels, tmp_path / "cifar10-c", NAMES, seed=4, progress=False)
    assert meta["corruptions"] == NAMES and meta["seed"] == 4 and meta["n"] == 6
    assert set(meta["files"]) == {"labels.npy"} | {f"{c}.npy" for c in NAMES}
    for name in NAMES:
        for severity in (1, 5):
            data = load_corrupted("cifar10", name, severity, data_dir=tmp_path)
            np.testing.assert_array_equal(data.tensors()[1].numpy(), labels)
            expected = corrupt(images, name, severity, seed=4)
            np.testing.assert_array_equal(data.tensors()[0].permute(0, 2, 3, 1).numpy(), expected)
            assert data.origin.startswith("regenerated (seed 4")
    assert gen.verify_corrupted_set(tmp_path / "cifar10-c") == []


def test_severity_subset_and_same_seed_reproduces_checksums(tmp_path):
    images, labels = clean_set()
    a = gen.generate_corrupted_set(images, labels, tmp_path / "a", ["fog"], severities=[4, 2], progress=False)
    b = gen.generate_corrupted_set(images, labels, tmp_path / "b", ["fog"], severities=[2, 4], progress=False)
    assert a["severities"] == [2, 4]
    assert a["files"] == b["files"]
    (tmp_path / "a").rename(tmp_path / "cifar10-c")
    s4 = load_corrupted("cifar10", "fog", 4, data_dir=tmp_path).tensors()[0].permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(s4, corrupt(images, "fog", 4))
    with pytest.raises(ValueError, match="severities"):
        load_corrupted("cifar10", "fog", 3, data_dir=tmp_path)


class Interrupt(Exception):
    pass


def test_interrupted_generation_resumes(tmp_path, monkeypatch):
    images, labels = clean_set()
    out = tmp_path / "set"
    real = gen.corrupt
    calls = []

    def failing(batch, name, *args, **kwargs):
        calls.append(name)
        if name == NAMES[1]:
            raise Interrupt  # dies in the middle of the second file
        return real(batch, name, *args, **kwargs)

    monkeypatch.setattr(gen, "corrupt", failing)
    with pytest.raises(Interrupt):
        gen.generate_corrupted_set(images, labels, out, NAMES, seed=1, progress=False)
    assert (out / f"{NAMES[0]}.npy").is_file() and not (out / f"{NAMES[1]}.npy").exists()
    assert (out / f".{NAMES[1]}.npy.partial").exists()  # what a kill leaves behind
    meta = json.loads((out / "metadata.json").read_text())
    assert set(meta["files"]) == {"labels.npy", f"{NAMES[0]}.npy"}
    (out / f".{NAMES[2]}.npy.partial").write_bytes(b"stale")

    calls.clear()
    monkeypatch.setattr(gen, "corrupt", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    resumed = gen.generate_corrupted_set(images, labels, out, NAMES, seed=1, progress=False)
    assert NAMES[0] not in calls and set(calls) == set(NAMES[1:])
    assert not list(out.glob(".*partial"))
    fresh = gen.generate_corrupted_set(images, labels, tmp_path / "fresh", NAMES, seed=1, progress=False)
    assert resumed["files"] == fresh["files"]

    # a damaged finished file fails its checksum and is written again
    (out / f"{NAMES[2]}.npy").write_bytes(b"damaged")
    assert gen.verify_corrupted_set(out) == [f"{NAMES[2]}.npy"]
    calls.clear()
    gen.generate_corrupted_set(images, labels, out, NAMES, seed=1, progress=False)
    assert calls == [NAMES[2]] * 5 and gen.verify_corrupted_set(out) == []


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    images, labels = clean_set()
    gen.generate_corrupted_set(images, labels, tmp_path, ["fog"], seed=1, progress=False)
    with pytest.raises(ValueError, match="seed"):
        gen.generate_corrupted_set(images, labels, tmp_path, ["fog"], seed=2, progress=False)
    gen.generate_corrupted_set(images, labels, tmp_path, ["snow"], seed=1, progress=False)  # adds a file
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["corruptions"] == ["snow", "fog"]  # canonical order
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    np.save(foreign / "fog.npy", np.zeros(3))
    with pytest.raises(ValueError, match="metadata"):
        gen.generate_corrupted_set(images, labels, foreign, ["fog"], progress=False)


def test_bad_generator_inputs(tmp_path):
    images, labels = clean_set()
    with pytest.raises(ValueError, match="NHWC"):
        gen.generate_corrupted_set(images.transpose(0, 3, 1, 2), labels, tmp_path, ["fog"], progress=False)
    with pytest.raises(ValueError, match="labels"):
        gen.generate_corrupted_set(images, labels[:3], tmp_path, ["fog"], progress=False)
    with pytest.raises(ValueError, match="unknown corruption"):
        gen.generate_corrupted_set(images, labels, tmp_path, ["haze"], progress=False)
    assert gen.corruption_groups(["extra", "fog"]) == [
        "fog",
        "speckle_noise",
        "gaussian_blur",
        "spatter",
        "saturate",
    ]


def test_cli_generates_a_loadable_set(tmp_path, capsys):
    out = tmp_path / "cifar10-c"
    argv = ["corrupt", "--dataset", "synthetic", "--limit", "4", "--corruptions", "fog", "pixelate"]
    argv += ["--severities", "1", "3", "--out", str(out), "--no-progress", "--seed", "2"]
    assert main(argv) == 0
    assert "done" in capsys.readouterr().out
    data = load_corrupted("cifar10", "pixelate", 3, data_dir=tmp_path)
    assert len(data) == 4
    assert main(argv[:-2] + ["--seed", "3"]) == 2  # other settings into the same folder: a user error


def test_tiny_scale_generation_with_jpeg_85(tmp_path):
    images, labels = clean_set(3, 64)
    gen.generate_corrupted_set(
        images,
        labels,
        tmp_path / "tinyimagenet-c",
        ["contrast"],
        severities=[1],
        jpeg_quality=85,
        progress=False,
    )
    data = load_corrupted("tinyimagenet", "contrast", 1, data_dir=tmp_path)
    out = data.tensors()[0].permute(0, 2, 3, 1).numpy()
    plain = corrupt(images, "contrast", 1)
    assert out.shape == (3, 64, 64, 3) and not np.array_equal(out, plain)
    assert np.abs(out.astype(int) - plain).mean() < 20  # JPEG-85 loss on top of the corruption
