"""Training data: photos from folders, cropped and flipped, each with a hole mask.

A sample is a pure function of (seed, epoch, index): crops, flips and masks come from a generator seeded with those
three numbers, so every process of a distributed run, and a run resumed mid-epoch, sees exactly the same data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from . import IMAGE_FORMATS
from .image_processing import centre_square

logger = logging.getLogger(__name__)

MAX_UNREADABLE_IN_A_ROW = 100  # then the data, not a stray file, is the problem
MaskSource = Callable[[int, np.random.Generator], np.ndarray]  # (size, rng) → (size, size) bool, True = hole


def list_images(folders: Sequence[str | Path], what: str = "images") -> list[Path]:
    """Every image file (`rfr_pipeline.IMAGE_FORMATS`) under the folders, recursively, in a stable order; `what`
    names them in the errors."""
    paths = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{what} folder {folder} does not exist")
        paths += [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_FORMATS]
    if not paths:
        raise ValueError(f"no {what} ({', '.join(sorted(IMAGE_FORMATS))}) in {', '.join(map(str, folders))}")
    return sorted(paths)


def split_validation(paths: list[Path], count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """A fixed, seeded choice of `count` validation images; the rest train."""
    if count <= 0:
        return paths, []
    if count >= len(paths):
        raise ValueError(f"cannot hold out {count} validation images from {len(paths)}")
    chosen = set(np.random.default_rng(seed).choice(len(paths), size=count, replace=False).tolist())
    return [p for i, p in enumerate(paths) if i not in chosen], [p for i, p in enumerate(paths) if i in chosen]


class UnreadableImagesError(RuntimeError):
    """Every image tried for one sample could not be read: the whole data set, or a long run of it, is bad."""

    def __init__(self, paths: Sequence[Path], errors: list[str]):
        shown = "\n  ".join(errors[:5]) + (f"\n  … and {len(errors) - 5} more" if len(errors) > 5 else "")
        if len(errors) == len(paths):
            what = f"none of the {len(paths)} images in the data set could be read"
        else:
            what = f"{len(errors)} images in a row (of {len(paths)} in the data set) could not be read"
        super().__init__(f"{what}; check the data folder:\n  {shown}")


class InpaintingDataset(torch.utils.data.Dataset):
    """Photos → {"image": (3, R, R) in [0, 1], "known": (1, R, R), 1 = known, "skipped": unreadable files passed}.

    Training samples: a random square crop (at least `min_crop_scale` of the shorter side) resized to R, flipped horizontally with
    p = 0.5, and a mask from `masks` flipped independently. Validation samples (`train=False`): the centre square, no
    flips, and the same mask every epoch. An unreadable image is logged and replaced by the next readable one, so a
    bad file never ends an epoch nor leaves processes of a distributed run with batches of different sizes.
    """

    def __init__(self, paths: Sequence[Path], resolution: int, masks: MaskSource, seed: int = 0, train: bool = True,
                 min_crop_scale: float = 0.5):
        if not paths:
            raise ValueError("the dataset has no images")
        if not 0 < min_crop_scale <= 1:
            raise ValueError(f"min_crop_scale must be in (0, 1], got {min_crop_scale}")
        self.min_crop_scale = min_crop_scale
        self.paths = list(paths)
        self.resolution = resolution
        self.masks = masks
        self.seed = seed
        self.train = train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        errors = []
        for attempt in range(min(len(self.paths), MAX_UNREADABLE_IN_A_ROW)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                with PIL.Image.open(path) as image:
                    image = PIL.ImageOps.exif_transpose(image).convert("RGB")
                break
            except (OSError, ValueError, SyntaxError) as err:  # what PIL raises for unreadable or corrupt files
                logger.warning("skipping unreadable image %s: %s", path, err)
                errors.append(f"{path}: {err}")
        else:
            raise UnreadableImagesError(self.paths, errors)
        skipped = len(errors)
        epoch = self.epoch if self.train else 0
        rng = np.random.default_rng([self.seed, epoch, index])
        image = self._crop(image, rng)
        hole = self.masks(self.resolution, rng)
        if self.train and rng.uniform() < 0.5:
            image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        if self.train and rng.uniform() < 0.5:
            hole = hole[:, ::-1]
        rgb = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        known = torch.from_numpy(~np.ascontiguousarray(hole))[None].float()
        return {"image": rgb, "known": known, "skipped": skipped}

    def _crop(self, image: PIL.Image.Image, rng: np.random.Generator) -> PIL.Image.Image:
        if not self.train:
            return centre_square(image, self.resolution)
        w, h = image.size
        side = int(rng.integers(max(1, int(min(w, h) * self.min_crop_scale)), min(w, h) + 1))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        box = (left, top, left + side, top + side)
        return image.resize((self.resolution, self.resolution), PIL.Image.Resampling.BICUBIC, box=box)
