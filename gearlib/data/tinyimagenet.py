"""Tiny ImageNet (200 classes, 64x64) from its official folder layout `tiny-imagenet-200/`.

Labels are the rank of each wnid in the sorted wnid list, for train, val and the -C sets alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import torch

from gearlib.data.folder import IMAGE_SUFFIXES, decode_images, repair_hint
from gearlib.data.images import ImageDataset

FOLDER = "tiny-imagenet-200"


def find_root(root: Path) -> Path:
    """`root/tiny-imagenet-200/` if present, else `root` itself when it holds wnids.txt."""
    nested = root / FOLDER
    return nested if nested.is_dir() else root


def has_layout(root: Path) -> bool:
    base = find_root(root)
    return (base / "wnids.txt").is_file() and (base / "train").is_dir()


def read_wnids(base: Path) -> List[str]:
    """The 200 wnids, sorted (wnids.txt itself is not sorted; sorting fixes the label order)."""
    wnids = [line.strip() for line in (base / "wnids.txt").read_text().splitlines() if line.strip()]
    if not wnids:
        raise ValueError(f"{base / 'wnids.txt'} is empty")
    return sorted(wnids)


def load_tinyimagenet(root: Path, split: str) -> ImageDataset:
    """Load the train split (train/<wnid>/images/*.JPEG) or the labelled val split (val_annotations.txt)."""
    base = find_root(root)
    wnids = read_wnids(base)
    index = {w: i for i, w in enumerate(wnids)}
    paths: List[Path] = []
    labels: List[int] = []
    if split == "train":
        for wnid in wnids:
            folder = base / "train" / wnid / "images"
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing from the Tiny ImageNet train split")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths.extend(files)
            labels.extend([index[wnid]] * len(files))
    else:
        annotations = base / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise FileNotFoundError(f"{annotations} is missing: the val split cannot be labelled")
        for line in annotations.read_text().splitlines():
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise ValueError(f"{annotations}: cannot parse line {line!r} (file<TAB>wnid<TAB>box...)")
            paths.append(base / "val" / "images" / fields[0])
            labels.append(index[fields[1]])
    if not paths:
        raise FileNotFoundError(f"no images found for Tiny ImageNet {split} under {base}")
    array = decode_images(paths, size=64, how_to_fix=repair_hint("tinyimagenet", base))
    images = torch.from_numpy(array.transpose(0, 3, 1, 2).copy())
    source = f"tinyimagenet {split} (official layout in {base})"
    return ImageDataset(images, torch.tensor(labels, dtype=torch.long), wnids, source)
