"""Training data: photos from folders or 🤗 Datasets, cropped and flipped, each with a hole mask.

A sample is a pure function of (seed, epoch, index): crops, flips and masks come from a generator seeded with those
three numbers, so every process of a distributed run, and a run resumed mid-epoch, sees exactly the same data. A
streamed dataset (too large for the disk) is read as each process's own shard, in a seeded shuffled order; its
samples are a function of (seed, epoch, process, position in the shard), and a resumed run skips what was read.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
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


UNREADABLE = (OSError, ValueError, SyntaxError)  # what PIL raises for unreadable or corrupt files


def open_image(item) -> PIL.Image.Image:
    """An RGB image, upright (EXIF), from a file path or a 🤗 Datasets image ({"bytes", "path"}, undecoded)."""
    if isinstance(item, dict):
        item = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else item["path"]
    with PIL.Image.open(item) as image:
        return PIL.ImageOps.exif_transpose(image).convert("RGB")


def describe(item) -> str:
    return str(item.get("path") or "an image stored in the dataset") if isinstance(item, dict) else str(item)


class ImageColumn(Sequence):
    """The images of one column of a 🤗 Datasets table, by row, as stored ({"bytes", "path"}: see `load_images`)."""

    def __init__(self, table, column: str, rows: Sequence[int] | None = None):
        self.table, self.column = table, column
        self.rows = list(range(len(table))) if rows is None else list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        return self.table[self.rows[index]][self.column]


def add_dataset_arguments(parser, instead_of: str, split: str, streaming: str) -> None:
    """The command-line options of diffusers' training examples for a 🤗 Datasets source, on `parser` (a parser or
    an argument group): --dataset_name (instead of `instead_of`), --dataset_config_name, --dataset_split (default
    `split`), --image_column, --cache_dir and --streaming (`streaming` says what it does there)."""
    parser.add_argument("--dataset_name", help=f"instead of {instead_of}: a 🤗 Datasets dataset, a Hub id or a local "
                                               "folder or files datasets.load_dataset reads (parquet, an image folder, ...)")
    parser.add_argument("--dataset_config_name", help="the dataset's configuration, if it has several")
    parser.add_argument("--dataset_split", default=split, help="the split to read (default: %(default)s)")
    parser.add_argument("--image_column", help="the dataset's column of images (default: its first image column)")
    parser.add_argument("--cache_dir", help="where 🤗 Datasets keeps downloaded and prepared data")
    parser.add_argument("--streaming", action="store_true", help=streaming)


def load_images(name: str, config: str | None = None, split: str = "train", image_column: str | None = None,
                cache_dir: str | None = None, streaming: bool = False):
    """A split of a 🤗 Datasets dataset (a Hub id, or a local folder or files `datasets.load_dataset` reads: parquet, an
    image folder, ...) and the name of its image column (`image_column`, else the first column of images). The images
    stay undecoded ({"bytes", "path"}): `open_image` decodes them, so an unreadable one is skipped like an unreadable
    file. ValueError, saying what is wrong, for a dataset that cannot be loaded or has no such image column."""
    try:
        import datasets
    except ImportError as err:
        raise ValueError("reading a 🤗 Datasets dataset needs the datasets package: pip install "
                         "'rfr-pipeline[train]'") from err
    try:
        table = datasets.load_dataset(name, config, split=split, cache_dir=cache_dir, streaming=streaming)
    except Exception as err:  # noqa: BLE001 (datasets raises many kinds: not found, no such config or split, offline)
        raise ValueError(f"cannot load the dataset {name!r} (config {config!r}, split {split!r}): "
                         f"{type(err).__name__}: {err}") from err
    features = table.features or {}
    images = [column for column, feature in features.items() if isinstance(feature, datasets.Image)]
    column = image_column or (images[0] if images else None)
    if column is None or column not in features:
        raise ValueError(f"the dataset {name!r} has no image column {image_column or ''}".rstrip() +
                         f" (its columns: {', '.join(features) or 'none known'}; images: {', '.join(images) or 'none'});"
                         " name one with --image_column")
    if not isinstance(features[column], datasets.Image):
        raise ValueError(f"the column {column!r} of {name!r} holds {features[column]}, not images")
    return table.cast_column(column, datasets.Image(decode=False)), column


class InpaintingDataset(torch.utils.data.Dataset):
    """Photos → {"image": (3, R, R) in [0, 1], "known": (1, R, R), 1 = known, "skipped": unreadable files passed}.

    Training samples: a random square crop (at least `min_crop_scale` of the shorter side) resized to R, flipped horizontally with
    p = 0.5, and a mask from `masks` flipped independently. Validation samples (`train=False`): the centre square, no
    flips, and the same mask every epoch. An unreadable image is logged and replaced by the next readable one, so a
    bad file never ends an epoch nor leaves processes of a distributed run with batches of different sizes.
    """

    def __init__(self, paths: Sequence, resolution: int, masks: MaskSource, seed: int = 0, train: bool = True,
                 min_crop_scale: float = 0.5):
        """`paths`: image files, or the images of a 🤗 Datasets table (`ImageColumn`)."""
        if not paths:
            raise ValueError("the dataset has no images")
        if not 0 < min_crop_scale <= 1:
            raise ValueError(f"min_crop_scale must be in (0, 1], got {min_crop_scale}")
        self.min_crop_scale = min_crop_scale
        self.paths = paths if isinstance(paths, ImageColumn) else list(paths)
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
            item = self.paths[(index + attempt) % len(self.paths)]
            try:
                image = open_image(item)
                break
            except UNREADABLE as err:
                logger.warning("skipping unreadable image %s: %s", describe(item), err)
                errors.append(f"{describe(item)}: {err}")
        else:
            raise UnreadableImagesError(self.paths, errors)
        epoch = self.epoch if self.train else 0
        return self.sample(image, np.random.default_rng([self.seed, epoch, index]), skipped=len(errors))

    def sample(self, image: PIL.Image.Image, rng: np.random.Generator, skipped: int = 0) -> dict:
        """One photo's sample, its crop, mask and flips drawn from `rng`."""
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


class StreamingInpaintingDataset(torch.utils.data.IterableDataset):
    """A streamed 🤗 Datasets split (`load_images(..., streaming=True)`) → InpaintingDataset's training samples, for
    datasets too large to keep on disk.

    Each process of a distributed run reads its own shard (`datasets.distributed.split_dataset_by_node`: whole files
    per process where their number allows, else every n-th example), shuffled through a seeded buffer that
    `set_epoch` reseeds, so every example is read once per epoch and by one process. The sample of the example at
    `position` in this process's epoch is drawn from (seed, epoch, process, position), and the sample records it
    ("row"). `start_at(n)` makes the next
    iteration skip the epoch's first n examples: a run resumed mid-epoch reads the rest of the same order. Unreadable
    images are skipped (counted in the next sample's "skipped"). Read in the training process itself: the positions
    count what this process has read, which DataLoader workers would split between them.
    """

    def __init__(self, stream, column: str, resolution: int, masks: MaskSource, seed: int = 0,
                 process_index: int = 0, num_processes: int = 1, min_crop_scale: float = 0.5,
                 shuffle_buffer: int = 1000, exclude: Sequence = ()):
        """`exclude`: images (as stored) the stream holds but training must not read, e.g. held out for validation."""
        from datasets.distributed import split_dataset_by_node

        self.stream = split_dataset_by_node(stream.shuffle(seed=seed, buffer_size=shuffle_buffer),
                                            rank=process_index, world_size=num_processes)
        self.column = column
        self.samples = InpaintingDataset([None], resolution, masks, seed=seed, min_crop_scale=min_crop_scale)
        self.seed, self.process_index = seed, process_index
        self.excluded = {image_key(item) for item in exclude}
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    def start_at(self, position: int) -> None:
        self.start = position

    def __iter__(self) -> Iterator[dict]:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError("a streamed dataset is read in the training process (--dataloader_num_workers 0)")
        self.stream.set_epoch(self.epoch)
        unreadable: list[str] = []  # since the last readable image
        # The epoch's order is the same on every pass: a resumed run reads past its first `start` examples without
        # decoding them. (Not the stream's own skip(): combined with shuffle and sharding, it skips other examples.)
        for position, row in enumerate(self.stream):
            item = row[self.column]
            if position < self.start or (self.excluded and image_key(item) in self.excluded):
                continue
            try:
                image = open_image(item)
            except UNREADABLE as err:
                logger.warning("skipping unreadable image %s: %s", describe(item), err)
                unreadable.append(f"{describe(item)}: {err}")
                if len(unreadable) >= MAX_UNREADABLE_IN_A_ROW:
                    raise UnreadableImagesError(range(position + 1), unreadable) from err
                continue
            logger.debug("epoch %d, process %d, example %d: %s", self.epoch, self.process_index, position,
                         describe(item))
            rng = np.random.default_rng([self.seed, self.epoch, self.process_index, position])
            yield {**self.samples.sample(image, rng, len(unreadable)), "row": position}  # (rows read: to resume from)
            unreadable = []


def image_key(item) -> str:
    """What tells images (as stored) apart: a digest of their bytes, else their path."""
    if isinstance(item, dict) and item.get("bytes") is not None:
        import hashlib

        return hashlib.sha1(item["bytes"]).hexdigest()
    return describe(item)
