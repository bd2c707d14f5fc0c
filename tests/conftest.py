"""Shared pytest fixtures: the JPEG CIFAR-10 copy (when CI unpacked it) and a quiet matplotlib backend."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def jpeg_cifar10_dir() -> Path:
    """The data directory holding `cifar10/train` and `cifar10/test` JPEG class folders, or skip."""
    candidates = [os.environ.get("GEARLIB_DATA", ""), "data"]
    for base in candidates:
        if base and (Path(base) / "cifar10" / "train").is_dir():
            return Path(base)
    pytest.skip(
        "the JPEG CIFAR-10 copy is not unpacked: run `tar xzf ../shared/data/cifar10-jpeg.tar.gz -C "
        "data/cifar10` or set GEARLIB_DATA (.ci/run does this when ../shared/data exists)"
    )
