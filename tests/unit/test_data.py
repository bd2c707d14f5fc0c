"""Tests of gearlib.data: official layouts written by the tests, the JPEG copy, errors and batch sources."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gearlib.cli import main
from gearlib.data import (
    DatasetNotFoundError,
    TensorBatches,
    load_dataset,
    random_crop_flip,
    synthetic_tensors,
)
from gearlib.data.cifar import CIFAR10_CLASSES, load_cifar_pickle
from gearlib.data.folder import BadImageError


def _cifar10_rows(n: int, offset: int = 0) -> np.ndarray:
    """Image k has R = k, G = 100 + k, B = 200 + k (mod 256), and a marked pixel (row 0, column 1) of 255 in red."""
    rows = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for k in range(n):
        rows[k, 0], rows[k, 1], rows[k, 2] = (
            (offset + k) % 256,
            (100 + offset + k) % 256,
            (200 + offset + k) % 256,
        )
        rows[k, 0, 0, 1] = 255
    return rows.reshape(n, 3072)


def write_tiny_cifar10(root: Path, n: int = 10, bytes_keys: bool = False) -> Path:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def key(k: str):
        return k.encode() if bytes_keys else k

    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batch = {
            key("data"): _cifar10_rows(n, offset=i * n),
            key("labels"): [(i * n + k) % 10 for k in range(n)],
            key("batch_label"): f"batch {i}",
            key("filenames"): [f"img_{k}.png" for k in range(n)],
        }
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "batches.meta", "wb") as handle:
        names = [c.encode() for c in CIFAR10_CLASSES] if bytes_keys else CIFAR10_CLASSES
        pickle.dump({key("label_names"): names, key("num_cases_per_batch"): n}, handle, protocol=2)
    return root


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_official_cifar10_pickles_load_with_values_in_place(tmp_path, bytes_keys):
    write_tiny_cifar10(tmp_path, n=10, bytes_keys=bytes_keys)
    train = load_dataset("cifar10", "train", data_dir=tmp_path, verify="off")
    test = load_dataset("cifar10", "test", data_dir=tmp_path, verify="off")
    assert len(train) == 50 and len(test) == 10
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    image = test.images[3]  # test batch has offset 50
    assert int(image[0, 5, 5]) == 53 and int(image[1, 5, 5]) == 153 and int(image[2, 5, 5]) == 253
    assert int(image[0, 0, 1]) == 255 and int(image[1, 0, 1]) == 153  # the mark sits in the red plane only
    assert train.labels.tolist()[:12] == [k % 10 for k in range(12)]
    assert train.classes == CIFAR10_CLASSES


def test_md5_strict_rejects_modified_files_and_off_accepts(tmp_path):
    write_tiny_cifar10(tmp_path)
    with pytest.raises(ValueError, match="md5"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify="strict")
    with pytest.warns(UserWarning, match="md5"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify="warn")
    with pytest.raises(ValueError, match="verify must be one of"):
        load_cifar_pickle(tmp_path / "cifar10", "cifar10", "test", verify="sometimes")


def test_corrupted_pickle_gets_a_clear_error(tmp_path):
    write_tiny_cifar10(tmp_path)
    target = tmp_path / "cifar10" / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(target.read_bytes()[:100])  # truncated download
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load_dataset("cifar10", "test", data_dir=tmp_path, verify="off")


def test_cifar100_pickles(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 20), ("test", 8)):
        batch = {"data": _cifar10_rows(n), "fine_labels": list(range(n)), "coarse_labels": [0] * n}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, handle, protocol=2)
    test = load_dataset("cifar100", "test", data_dir=tmp_path, verify="off")
    assert len(test) == 8 and test.num_classes == 100 and test.labels.tolist() == list(range(8))


def _write_cifar10_folders(root: Path, suffix: str = ".png") -> None:
    """CIFAR-10 in the image-folder layout: 3 train and 2 test images per class, pixel value c*20 + k."""
    from PIL import Image

    for split, per_class in (("train", 3), ("test", 2)):
        for c, name in enumerate(CIFAR10_CLASSES):
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.fromarray(np.full((32, 32, 3), c * 20 + k, dtype=np.uint8)).save(
                    folder / f"{k:04d}{suffix}"
                )


def test_image_folder_layout(tmp_path):
    _write_cifar10_folders(tmp_path)
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert len(train) == 30 and train.labels.bincount().tolist() == [3] * 10
    assert int(train.images[4, 0, 0, 0]) == 20 + 1  # class 1, image 1 (lossless PNG)


def test_truncated_jpeg_names_the_file_and_how_to_recreate_the_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEARLIB_CACHE", str(tmp_path / "cache"))
    _write_cifar10_folders(tmp_path, ".jpg")
    broken = tmp_path / "cifar10" / "train" / "cat" / "0001.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(BadImageError, match="re-create") as info:
        load_dataset("cifar10", "train", data_dir=tmp_path)
    assert str(broken) in str(info.value) and str(tmp_path / "cifar10") in str(info.value)
    assert main(["data", "check", "cifar10", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        "\n" not in err and err.startswith("gearlib data: error: cannot decode image") and str(broken) in err
    )


def _write_tiny_imagenet(root: Path, wnids, per_class: int = 2) -> None:
    from PIL import Image

    base = root / "tinyimagenet" / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")  # deliberately not sorted
    lines = []
    for w_index, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        value = 40 * (sorted(wnids).index(wnid) + 1)
        for k in range(per_class):
            Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(folder / f"{wnid}_{k}.JPEG")
        name = f"val_{w_index}.JPEG"
        Image.fromarray(np.full((64, 64), value, np.uint8)).convert("L").save(base / "val" / "images" / name)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tinyimagenet_official_layout_labels_follow_sorted_wnids(tmp_path):
    wnids = ["n03", "n01", "n02"]
    _write_tiny_imagenet(tmp_path, wnids)
    train = load_dataset("tinyimagenet", "train", data_dir=tmp_path)
    test = load_dataset("tinyimagenet", "test", data_dir=tmp_path)
    assert train.classes == ["n01", "n02", "n03"] and train.image_size == 64
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # Each image's brightness encodes its sorted wnid rank: labels agree across train and val.
    for ds in (train, test):
        brightness = ds.images.float().mean(dim=(1, 2, 3)).round()
        assert torch.allclose(brightness, 40.0 * (ds.labels.float() + 1), atol=2)
    assert test.images.shape == (3, 3, 64, 64)  # grey val image converted to RGB


def test_synthetic_is_deterministic_balanced_and_learnable():
    a_img, a_lab = synthetic_tensors(400, seed=3)
    b_img, b_lab = synthetic_tensors(400, seed=3)
    assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    assert not torch.equal(a_img, synthetic_tensors(400, seed=4)[0])
    assert a_lab.bincount().tolist() == [40] * 10
    # Learnable: a nearest-class-mean classifier on downsampled pixels beats chance by far.
    test_img, test_lab = synthetic_tensors(400, seed=5)

    def feats(x):
        return torch.nn.functional.avg_pool2d(x.float() / 255, 4).flatten(1)

    means = torch.stack([feats(a_img)[a_lab == c].mean(0) for c in range(10)])
    pred = torch.cdist(feats(test_img), means).argmin(1)
    assert (pred == test_lab).float().mean() > 0.3
    assert a_img.float().std() > 20  # textured, not flat


def test_jpeg_cifar10_copy_loads_in_cifar_order(jpeg_cifar10_dir):
    train = load_dataset("cifar10", "train", data_dir=jpeg_cifar10_dir)
    test = load_dataset("cifar10", "test", data_dir=jpeg_cifar10_dir)
    assert len(train) == 50000 and len(test) == 10000
    assert train.classes == CIFAR10_CLASSES
    assert train.labels.bincount().tolist() == [5000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
    assert train.images.shape == (50000, 3, 32, 32) and train.images.dtype == torch.uint8


def test_missing_and_unknown_datasets_get_clear_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "cifar-10-batches-py" in message and "GEARLIB_DATA" in message
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("synthetic", split="dev")
    with pytest.raises(ValueError, match="subset"):
        load_dataset("synthetic", subset=-5)


def test_data_dir_env_variable_is_used(tmp_path, monkeypatch):
    write_tiny_cifar10(tmp_path)
    monkeypatch.setenv("GEARLIB_DATA", str(tmp_path))
    assert len(load_dataset("cifar10", "test", verify="off")) == 10


def test_subset_and_validation_split_are_seeded_and_disjoint():
    sub = load_dataset("synthetic", "train", subset=200, seed=1)
    assert len(sub) == 200 and sub.labels.bincount().tolist() == [20] * 10
    assert torch.equal(sub.images, load_dataset("synthetic", "train", subset=200, seed=1).images)
    train = load_dataset("synthetic", "train", val_fraction=0.2, seed=0)
    val = load_dataset("synthetic", "val", val_fraction=0.2, seed=0)
    assert len(train) + len(val) == 5000 and len(val) == 1000
    seen = {bytes(x.numpy()) for x in train.images[:500]}
    assert not any(bytes(x.numpy()) in seen for x in val.images)


def test_random_crop_flip_matches_a_hand_made_crop():
    image = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(image, padding=2, generator=g)
    g = torch.Generator().manual_seed(0)
    offsets = torch.randint(0, 5, (2, 2), generator=g)
    flips = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
    for k in range(2):
        oy, ox = offsets[k].tolist()
        expect = padded[k, :, oy : oy + 8, ox : ox + 8]
        if flips[k]:
            expect = expect.flip(-1)
        assert torch.equal(out[k], expect)


def test_tensor_batches_shapes_views_and_determinism():
    images, labels = synthetic_tensors(100, seed=0)

    def two_views(x, generator=None):
        return [x, 1 - x]

    batches = TensorBatches(images, labels, 32, augment=two_views, generator=torch.Generator().manual_seed(7))
    assert len(batches) == 3
    x, y = next(iter(batches))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (32,)
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.allclose(x[32:], 1 - x[:32])
    again = TensorBatches(images, labels, 32, augment=two_views, generator=torch.Generator().manual_seed(7))
    assert torch.equal(next(iter(again))[0], x)
    state = batches.state_dict()
    first = [b[0] for b in batches]
    batches.load_state_dict(state)
    assert all(torch.equal(a, b[0]) for a, b in zip(first, batches))
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(images, labels, 0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    size=st.integers(4, 12),
    padding=st.integers(0, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_crop_flip_keeps_shape_dtype_and_pixel_values(n, size, padding, seed):
    images = torch.randint(1, 256, (n, 3, size, size), dtype=torch.uint8)
    out = random_crop_flip(images, padding=padding, generator=torch.Generator().manual_seed(seed))
    assert out.shape == images.shape and out.dtype == torch.uint8
    # Every output pixel is either zero padding or a pixel of the same image and channel.
    for k in range(n):
        values = set(images[k].flatten().tolist()) | {0}
        assert set(out[k].flatten().tolist()) <= values
