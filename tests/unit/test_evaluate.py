"""Tests of clean/robust accuracy (RobustBench protocol) with mock models of known per-block accuracy.

The -C fixture encodes (corruption id, severity, index) in the pixels; the mock model reads them back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gearlib.corrupt import BENCHMARK_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS
from gearlib.corrupt.generate import generate_corrupted_set
from gearlib.data import ImageDataset
from gearlib.evaluate import (
    RobustResult,
    accuracy_table,
    clean_accuracy,
    corruption_error,
    robust_accuracy,
)

N = 20  # images per block


def label_of(index: np.ndarray) -> np.ndarray:
    return (index * 3 + 1) % 10


def right_count(corruption_id: int, severity: int) -> int:
    """How many of the first images of a block the mock model gets right (a known, varied number)."""
    return (corruption_id * 7 + severity * 3) % (N + 1)


def write_fixture(root: Path, corruptions=CORRUPTIONS) -> None:
    root.mkdir(parents=True)
    np.save(root / "labels.npy", np.tile(label_of(np.arange(N)), 5).astype(np.uint8))
    for name in corruptions:
        data = np.zeros((5 * N, 32, 32, 3), np.uint8)
        for s in range(1, 6):
            block = data[(s - 1) * N : s * N]
            block[..., 0] = CORRUPTIONS.index(name)
            block[..., 1] = s
            block[..., 2] = np.arange(N)[:, None, None]
        np.save(root / f"{name}.npy", data)


class DecodingModel(torch.nn.Module):
    """Right on image `index` of block (c, s) exactly when index < right_count(c, s)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training and x.dtype == torch.float32 and x.dim() == 4 and x.shape[1] == 3
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        codes = (x[:, :, 0, 0] * 255).round().long()
        cid, severity, index = codes[:, 0], codes[:, 1], codes[:, 2]
        label = (index * 3 + 1) % 10
        right = index < (cid * 7 + severity * 3) % (N + 1)
        guess = torch.where(right, label, (label + 1) % 10)
        return torch.nn.functional.one_hot(guess, 10).float() * self.scale


class ConstantModel(torch.nn.Module):
    def __init__(self, answer: int = 0) -> None:
        super().__init__()
        self.answer = answer
        self.bias = torch.nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.bias.expand(x.shape[0], 10).clone()
        logits[:, self.answer] = 1.0
        return logits


def expected_table(names, first: int = N) -> pd.DataFrame:
    rows = [
        [100.0 * min(right_count(CORRUPTIONS.index(c), s), first) / first for s in range(1, 6)] for c in names
    ]
    return pd.DataFrame(rows, index=names, columns=[1, 2, 3, 4, 5])


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    write_fixture(tmp_path / "cifar10-c")
    return tmp_path


def test_robust_accuracy_is_the_mean_of_75_blocks(data_dir):
    model = DecodingModel()
    model.train()
    result = robust_accuracy(model, "cifar10", data_dir=data_dir, batch_size=7)
    assert model.training  # mode restored
    table = expected_table(BENCHMARK_CORRUPTIONS)
    np.testing.assert_allclose(result.table.values, table.values)
    assert list(result.table.index) == BENCHMARK_CORRUPTIONS and list(result.table.columns) == [1, 2, 3, 4, 5]
    hand = (
        sum(right_count(CORRUPTIONS.index(c), s) / N for c in BENCHMARK_CORRUPTIONS for s in range(1, 6)) / 75
    )
    assert result.robust_accuracy == pytest.approx(100 * hand)
    pooled = sum(right_count(CORRUPTIONS.index(c), s) for c in BENCHMARK_CORRUPTIONS for s in range(1, 6))
    assert result.robust_accuracy == pytest.approx(100 * pooled / (75 * N))
    assert result.mean_corruption_error == pytest.approx(100 - result.robust_accuracy)
    assert result.source == "CIFAR-10-C (official)" and result.n_per_block == N and result.ci95 is None
    # the four extras are on disk: reported apart, never in the mean
    np.testing.assert_allclose(result.extras_table.values, expected_table(EXTRA_CORRUPTIONS).values)
    assert result.extras_accuracy == pytest.approx(expected_table(EXTRA_CORRUPTIONS).values.mean())
    assert result.per_corruption.shape == (15,) and result.per_severity.shape == (5,)
    summary = result.to_dict()
    assert summary["table"]["fog"][3] == pytest.approx(table.loc["fog", 3])
    assert "robust accuracy" in str(result)


def test_n_examples_takes_the_first_images(data_dir):
    result = robust_accuracy(DecodingModel(), "cifar10", data_dir=data_dir, n_examples=10, extras=False)
    np.testing.assert_allclose(result.table.values, expected_table(BENCHMARK_CORRUPTIONS, first=10).values)
    assert result.extras_table is None and result.n_per_block == 10


def test_sample_mode_reports_a_ci_around_the_truth(data_dir):
    truth = robust_accuracy(DecodingModel(), "cifar10", data_dir=data_dir, extras=False).robust_accuracy
    sampled = robust_accuracy(DecodingModel(), "cifar10", data_dir=data_dir, sample=8, seed=3, extras=False)
    low, high = sampled.ci95
    assert low <= truth <= high and low < sampled.robust_accuracy < high
    assert sampled.sample == 8 and sampled.n_per_block == 8
    again = robust_accuracy(DecodingModel(), "cifar10", data_dir=data_dir, sample=8, seed=3, extras=False)
    assert again.robust_accuracy == sampled.robust_accuracy  # seeded
    with pytest.raises(ValueError, match="sample"):
        robust_accuracy(DecodingModel(), "cifar10", data_dir=data_dir, sample=N + 1)


def test_subset_of_corruptions_and_accuracy_table(data_dir):
    table = accuracy_table(DecodingModel(), dataset="cifar10", data_dir=data_dir, corruptions=["fog", "snow"])
    np.testing.assert_allclose(table.values, expected_table(["fog", "snow"]).values)
    full = accuracy_table(DecodingModel(), dataset="cifar10", data_dir=data_dir, extras=False)
    assert full.shape == (15, 5)


def test_generate_mode_without_a_c_set(tmp_path):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(30, 3, 32, 32), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 3, size=30))
    share = 100 * float((labels == 0).float().mean())
    result = robust_accuracy(
        ConstantModel(0),
        "cifar10",
        data_dir=tmp_path,
        corruptions=["fog", "pixelate"],
        severities=[1, 5],
        clean=(images, labels),
        extras=True,
    )
    assert "generated on the fly" in result.source and "seed 0" in result.source
    assert result.notes and "not on disk" in result.notes[0]
    np.testing.assert_allclose(result.table.values, share)
    assert result.extras_table.shape == (4, 2)
    sampled = robust_accuracy(
        ConstantModel(0), "cifar10", data_dir=tmp_path, corruptions=["fog"], clean=(images, labels), sample=10
    )
    assert sampled.ci95 is not None and sampled.n_per_block == 10
    with pytest.raises(FileNotFoundError, match="2535967"):
        robust_accuracy(ConstantModel(0), "cifar10", data_dir=tmp_path, source="disk")
    with pytest.raises(ValueError, match="source"):
        robust_accuracy(ConstantModel(0), "cifar10", data_dir=tmp_path, source="web")


def test_generate_mode_matches_disk_mode_on_a_generated_set(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12)
    generate_corrupted_set(images, labels, tmp_path / "cifar10-c", ["snow", "fog"], seed=5, progress=False)

    class Brightness(torch.nn.Module):  # a deterministic function of the pixels
        def forward(self, x):
            return torch.nn.functional.one_hot((x.mean(dim=(1, 2, 3)) * 9.99).long(), 10).float()

    kwargs = dict(dataset="cifar10", data_dir=tmp_path, corruptions=["snow", "fog"], seed=5)
    disk = robust_accuracy(Brightness(), source="disk", **kwargs)
    fly = robust_accuracy(Brightness(), source="generate", clean=(images, labels), **kwargs)
    assert disk.source.startswith("CIFAR-10-C (regenerated, seed 5")
    pd.testing.assert_frame_equal(disk.table, fly.table)


def test_clean_accuracy_accepts_tensors_arrays_and_datasets():
    images = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    labels = torch.tensor([0] * 7 + [1] * 3)
    assert clean_accuracy(ConstantModel(0), images, labels, batch_size=3) == pytest.approx(70.0)
    assert clean_accuracy(ConstantModel(1), images.permute(0, 2, 3, 1).numpy(), labels) == pytest.approx(30.0)
    dataset = ImageDataset(images, labels, ["a", "b"])
    assert clean_accuracy(ConstantModel(0), dataset) == pytest.approx(70.0)
    with pytest.raises(ValueError, match="uint8"):
        clean_accuracy(ConstantModel(0), images.float(), labels)
    with pytest.raises(ValueError, match="labels"):
        clean_accuracy(ConstantModel(0), images, labels[:4])


def test_corruption_error_against_a_baseline():
    names = ["fog", "snow"]
    base = pd.DataFrame(50.0, index=names, columns=[1, 2, 3, 4, 5])  # errors 0.5
    model = pd.DataFrame(75.0, index=names, columns=[1, 2, 3, 4, 5])  # errors 0.25
    out = corruption_error(model, base)
    assert out["mce"] == pytest.approx(0.5) and (out["ce"] == 0.5).all()
    rel = corruption_error(model, base, clean=95.0, baseline_clean=90.0)
    assert rel["relative_mce"] == pytest.approx((25 - 5) / (50 - 10))
    with pytest.raises(ValueError, match="same"):
        corruption_error(model, base.iloc[:1])


def test_result_dataclass_properties():
    table = pd.DataFrame([[10.0, 20.0]], index=["fog"], columns=[1, 2])
    result = RobustResult("cifar10", "x", 15.0, table)
    assert result.mean_corruption_error == 85.0 and result.extras_accuracy is None
