"""Training data: masks and samples are deterministic functions of (seed, epoch, index); bad files are skipped."""

import logging

import numpy as np
import PIL.Image
import pytest

from rfr_pipeline.data import InpaintingDataset, list_images, split_validation
from rfr_pipeline.masks import MaskFolder, MaskGenerator, free_form_mask, rectangle_mask


@pytest.mark.parametrize("low,high", [(0.05, 0.2), (0.3, 0.6)])
def test_free_form_masks_reach_the_requested_area(low, high):
    areas = [free_form_mask(128, np.random.default_rng(s), (low, high)).mean() for s in range(20)]
    assert min(areas) >= low * 0.9 and max(areas) <= high + 0.15
    assert len({round(a, 4) for a in areas}) > 10  # varied


def test_rectangles_and_determinism():
    hole = rectangle_mask(64, np.random.default_rng(0), (0.2, 0.2))
    assert abs(hole.mean() - 0.2) < 0.03
    generator = MaskGenerator((0.1, 0.5))
    first = generator(64, np.random.default_rng([1, 2, 3]))
    assert np.array_equal(first, generator(64, np.random.default_rng([1, 2, 3])))
    with pytest.raises(ValueError, match="hole_range"):
        MaskGenerator((0.5, 0.2))


def test_mask_folder_reads_white_as_hole(tmp_path):
    mask = np.zeros((100, 100), np.uint8)
    mask[:, :50] = 255
    PIL.Image.fromarray(mask).save(tmp_path / "m.png")
    folder = MaskFolder(tmp_path)
    holes = [folder(32, np.random.default_rng(s)) for s in range(10)]
    assert all(h.shape == (32, 32) and 0 < h.mean() < 1 for h in holes)
    with pytest.raises(ValueError, match="mask images folder .*absent does not exist"):
        MaskFolder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no mask images \(.bmp, .jpeg"):
        MaskFolder(tmp_path / "empty")


def test_every_image_suffix_the_package_reads_is_found_by_training_evaluation_and_masks(tmp_path):
    from rfr_pipeline import IMAGE_FORMATS

    for n, (suffix, fmt) in enumerate(sorted(IMAGE_FORMATS.items())):
        PIL.Image.fromarray(np.full((8, 8, 3), 40 * n, np.uint8)).save(tmp_path / f"i{n}{suffix}", format=fmt)
    assert {p.suffix for p in list_images([tmp_path])} == {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
    assert len(MaskFolder(tmp_path).paths) == len(IMAGE_FORMATS)


@pytest.fixture()
def photos(tmp_path):
    for n in range(6):
        PIL.Image.fromarray(np.full((40 + n, 50, 3), 30 * n, np.uint8)).save(tmp_path / f"p{n}.png")
    (tmp_path / "broken.png").write_bytes(b"nope")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_dataset_samples_are_deterministic_per_epoch_and_skip_bad_files(photos, caplog):
    paths = list_images([photos])
    assert len(paths) == 7 and all(p.suffix == ".png" for p in paths)
    dataset = InpaintingDataset(paths, 32, MaskGenerator(), seed=5)
    sample = dataset[1]
    assert sample["image"].shape == (3, 32, 32) and sample["known"].shape == (1, 32, 32)
    assert set(sample["known"].unique().tolist()) <= {0.0, 1.0}
    again = dataset[1]
    assert (again["image"] == sample["image"]).all() and (again["known"] == sample["known"]).all()
    dataset.set_epoch(1)
    assert not (dataset[1]["known"] == sample["known"]).all()  # a new epoch draws new masks
    broken = paths.index(photos / "broken.png")
    with caplog.at_level(logging.WARNING, logger="rfr_pipeline.data"):
        replaced = dataset[broken]
    assert replaced["skipped"] == 1 and "broken.png" in caplog.text


def test_validation_split_is_fixed_and_disjoint(photos):
    paths = list_images([photos])
    train, val = split_validation(paths, 2, seed=0)
    assert len(val) == 2 and not set(train) & set(val)
    assert split_validation(paths, 2, seed=0) == (train, val)
    with pytest.raises(ValueError, match="cannot hold out"):
        split_validation(paths, 7, seed=0)


def test_min_crop_scale_bounds_the_random_zoom(tmp_path):
    # A horizontal ramp: the crop's width shows in the range of values the resized sample spans.
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 1, 3))
    PIL.Image.fromarray(ramp).save(tmp_path / "ramp.png")
    paths = [tmp_path / "ramp.png"]

    def spans(scale):
        dataset = InpaintingDataset(paths, 32, MaskGenerator(), seed=0, min_crop_scale=scale)
        out = []
        for epoch in range(20):
            dataset.set_epoch(epoch)
            row = dataset[0]["image"][0, 16]
            out.append(float(row.max() - row.min()))
        return np.array(out)

    whole = spans(1.0)
    assert (whole > 0.95).all()  # always the whole photo (at most flipped)
    assert spans(0.5).min() < 0.8 < spans(0.5).max()  # zooms in, sometimes by much
    with pytest.raises(ValueError, match="min_crop_scale"):
        InpaintingDataset(paths, 32, MaskGenerator(), min_crop_scale=0)


def test_brush_width_sets_how_thin_generated_strokes_are():
    def boundary_fraction(brush):  # share of hole pixels with a known neighbour: high for thin strokes
        generator = MaskGenerator((0.2, 0.3), rectangle_probability=0, brush=brush)
        rng = np.random.default_rng(0)
        fractions = []
        for _ in range(5):
            hole = generator(128, rng)
            inner = hole[1:-1, 1:-1] & hole[:-2, 1:-1] & hole[2:, 1:-1] & hole[1:-1, :-2] & hole[1:-1, 2:]
            fractions.append(1 - inner.sum() / hole[1:-1, 1:-1].sum())
        return np.mean(fractions)

    assert boundary_fraction((2, 3)) > 0.8
    assert boundary_fraction((20, 24)) < 0.3
    with pytest.raises(ValueError, match="brush widths"):
        MaskGenerator(brush=(0, 5))
