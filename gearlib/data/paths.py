"""Where datasets live on disk: the data-directory setting and the error raised when a set is missing.

Order: an explicit `data_dir` argument, then the `GEARLIB_DATA` environment variable, then `./data`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

HOW_TO_GET = {
    "cifar10": "download it with `gearlib data download cifar10` (needs a network), or unpack the JPEG copy "
    "(`tar xzf cifar10-jpeg.tar.gz -C <data_dir>/cifar10`) so that train/<class>/ and test/<class>/ exist",
    "cifar100": "download it with `gearlib data download cifar100` (needs a network), or place "
    "`cifar-100-python/` (train, test, meta) or train/ + test/ class folders there",
    "tinyimagenet": "download tiny-imagenet-200.zip from the Stanford CS231n site and unzip it there "
    "(`tiny-imagenet-200/` with wnids.txt, train/, val/)",
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset was asked for that is not on disk: the message says where we looked and how to get it."""

    def __init__(self, name: str, looked: Iterable[Path], how: str) -> None:
        places = "\n".join(f"  - {p}" for p in looked)
        super().__init__(
            f"dataset {name!r} not found. Looked in:\n{places}\nTo get it: {how}.\n"
            f"Set the data directory with data_dir=..., the GEARLIB_DATA environment variable, "
            f"or put it under ./data."
        )
        self.name = name


def resolve_data_dir(data_dir: Optional[PathLike] = None) -> Path:
    """Return the data directory: the argument, else $GEARLIB_DATA, else ./data (not required to exist)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("GEARLIB_DATA")
    if env:
        return Path(env).expanduser()
    return Path("data")


def dataset_dir(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """The folder `<data_dir>/<name>/` where dataset `name` is expected."""
    return resolve_data_dir(data_dir) / name


def cache_dir() -> Path:
    """Where decoded image arrays are cached ($GEARLIB_CACHE, else ~/.cache/gearlib)."""
    env = os.environ.get("GEARLIB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gearlib"
