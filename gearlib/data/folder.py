"""Image-folder datasets (`<split>/<class>/*.jpg|png`), decoded once and cached as one uint8 array.

Decoding 60,000 small JPEGs takes a while, so the array is cached under gearlib's cache directory, keyed by
the folder's path, file count, total size and newest modification time.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from gearlib.data.images import ImageDataset
from gearlib.data.paths import HOW_TO_GET, cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


def list_image_folder(root: Path) -> Tuple[List[str], List[Path], List[int]]:
    """Classes (sorted folder names), image paths (sorted per class) and labels of an image folder."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{root} has no class sub-folders (expected {root}/<class>/<image>)")
    paths: List[Path] = []
    labels: List[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise FileNotFoundError(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    return classes, paths, labels


class BadImageError(ValueError):
    """An image file that cannot be decoded (truncated, or not an image): names the file and the fix."""


def decode_images(
    paths: Sequence[Path], size: Optional[int] = None, workers: int = 4, how_to_fix: str = ""
) -> np.ndarray:
    """Decode images to a uint8 array [N,H,W,3] (RGB; resized to `size` if they differ).

    Raises BadImageError naming the first file that does not decode, followed by `how_to_fix`."""

    def read(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if size is not None and image.size != (size, size):
                    image = image.resize((size, size), Image.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for broken files
            raise BadImageError(f"cannot decode image {path} ({err}){how_to_fix}") from err

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(read, paths, chunksize=256)))


def repair_hint(dataset: str, folder: Path) -> str:
    """The tail of a BadImageError: which folder is damaged and how to re-create the dataset in it."""
    how = f" ({HOW_TO_GET[dataset]})" if dataset in HOW_TO_GET else ""
    return f"; {folder} holds a damaged copy of the dataset: delete it and re-create it{how}"


def _fingerprint(root: Path, paths: Sequence[Path], size: Optional[int]) -> str:
    stats = [p.stat() for p in paths]
    key = f"{root.resolve()}|{len(paths)}|{sum(s.st_size for s in stats)}|"
    key += f"{max(s.st_mtime_ns for s in stats)}|{size}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def load_image_folder(
    root: Path, size: Optional[int] = None, name: str = "", use_cache: bool = True, repair: str = ""
) -> ImageDataset:
    """Load every image under `root/<class>/` into an ImageDataset (labels = sorted class index).

    `repair` ends the message of a BadImageError (default: `repair_hint` for `root` itself)."""
    classes, paths, labels = list_image_folder(root)
    array: Optional[np.ndarray] = None
    cache_file = cache_dir() / f"folder-{_fingerprint(root, paths, size)}.npy"
    if use_cache and cache_file.is_file():
        try:
            array = np.load(cache_file)
        except (OSError, ValueError):
            array = None  # a damaged cache is rebuilt
        if array is not None and array.shape[0] != len(paths):
            array = None
    if array is None:
        array = decode_images(paths, size, how_to_fix=repair or repair_hint("", root))
        if use_cache:
            _save_atomic(cache_file, array)
    images = torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2)))
    source = f"{name or root.name} (image folder {root})"
    return ImageDataset(images, torch.tensor(labels, dtype=torch.long), classes, source)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, array)
        os.replace(tmp, path)
    except OSError:
        pass  # caching is an optimisation; a read-only home must not stop loading
