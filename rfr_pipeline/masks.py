"""Training masks: free-form strokes like the official generator, rectangles, or masks read from a folder.

Every mask is a function of a `numpy.random.Generator`, so a dataset that seeds one per (seed, epoch, index) gives
the same masks on every run, on every process and after a resume. Masks here are (H, W) bool, True = hole.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

from .data import list_images
from .image_processing import prepare_mask


def free_form_mask(size: int, rng: np.random.Generator, hole_range: tuple[float, float] = (0.05, 0.6),
                   brush: tuple[int, int] = (10, 24), max_strokes: int = 15) -> np.ndarray:
    """Random-walk brush strokes (1 to `max_strokes` walks, brush width in `brush` px at 256², scaled with `size`)
    drawn until the hole covers a fraction drawn uniformly from `hole_range`."""
    target = rng.uniform(*hole_range)
    scale = size / 256
    canvas = PIL.Image.new("L", (size, size), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    # Walks until the target area is reached; the cap lets large targets with thin brushes get there.
    for _ in range(max_strokes * 4):
        width = max(1, int(rng.integers(brush[0], brush[1] + 1) * scale))
        x, y = rng.uniform(0, size, 2)
        points = [(x, y)]
        for _ in range(int(rng.integers(4, 12))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(10, 60) * scale
            x = float(np.clip(x + length * math.cos(angle), 0, size - 1))
            y = float(np.clip(y + length * math.sin(angle), 0, size - 1))
            points.append((x, y))
        draw.line(points, fill=255, width=width, joint="curve")
        for px, py in points:
            draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill=255)
        if (np.asarray(canvas) > 0).mean() >= target:
            break
    return np.asarray(canvas) > 0


def rectangle_mask(size: int, rng: np.random.Generator, hole_range: tuple[float, float] = (0.05, 0.6)) -> np.ndarray:
    """One axis-aligned rectangle whose area is a fraction drawn from `hole_range`, aspect ratio 1:2 to 2:1."""
    area = rng.uniform(*hole_range) * size * size
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2)))
    h = int(min(size, round(math.sqrt(area * aspect))))
    w = int(min(size, round(area / max(h, 1))))
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    hole = np.zeros((size, size), bool)
    hole[top : top + h, left : left + w] = True
    return hole


class MaskGenerator:
    """Masks made on the fly: free-form strokes, or a rectangle with probability `rectangle_probability`."""

    def __init__(self, hole_range: tuple[float, float] = (0.05, 0.6), rectangle_probability: float = 0.2,
                 brush: tuple[int, int] = (10, 24)):
        if not 0 <= hole_range[0] < hole_range[1] <= 1:
            raise ValueError(f"hole_range must satisfy 0 <= low < high <= 1, got {hole_range}")
        if not 1 <= brush[0] <= brush[1]:
            raise ValueError(f"brush widths must satisfy 1 <= min <= max, got {brush}")
        self.hole_range = hole_range
        self.rectangle_probability = rectangle_probability
        self.brush = brush

    def __call__(self, size: int, rng: np.random.Generator) -> np.ndarray:
        if rng.uniform() < self.rectangle_probability:
            return rectangle_mask(size, rng, self.hole_range)
        return free_form_mask(size, rng, self.hole_range, self.brush)


class MaskFolder:
    """Masks read from a folder (white = hole), with random flips and a random square crop resized to the size."""

    def __init__(self, folder: str | Path):
        self.paths = list_images([folder], what="mask images")

    def __call__(self, size: int, rng: np.random.Generator) -> np.ndarray:
        path = self.paths[int(rng.integers(len(self.paths)))]
        with PIL.Image.open(path) as image:
            hole = prepare_mask(image).numpy()
        h, w = hole.shape
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = PIL.Image.fromarray(hole[top : top + side, left : left + side].astype(np.uint8) * 255)
        hole = np.asarray(crop.resize((size, size), PIL.Image.Resampling.NEAREST)) > 127
        if rng.uniform() < 0.5:
            hole = hole[:, ::-1]
        if rng.uniform() < 0.5:
            hole = hole[::-1, :]
        return np.ascontiguousarray(hole)


OBJECT_SHAPES = ("square", "disk", "stroke", "person", "car")


def _draw_object(shape: str, width: int, height: int, scale: float) -> PIL.Image.Image:
    """One hole of `shape`, centred, `scale` times a reference size (the photo's shorter side)."""
    mask = PIL.Image.new("L", (width, height))
    draw = PIL.ImageDraw.Draw(mask)
    cx, cy, s = width / 2, height / 2, scale * min(width, height)
    if shape == "square":
        draw.rectangle([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], fill=255)
    elif shape == "disk":
        draw.ellipse([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], fill=255)
    elif shape == "stroke":  # a thick brush stroke across the photo
        points = [(cx - s, cy - s / 3), (cx - s / 3, cy + s / 4), (cx + s / 3, cy - s / 4), (cx + s, cy + s / 3)]
        draw.line(points, fill=255, width=max(2, int(s / 6)), joint="curve")
    elif shape == "person":  # head, body, two legs
        draw.ellipse([cx - s / 10, cy - s / 2, cx + s / 10, cy - s * 0.3], fill=255)
        draw.rounded_rectangle([cx - s / 6, cy - s * 0.3, cx + s / 6, cy + s * 0.1], radius=s / 20, fill=255)
        draw.rectangle([cx - s / 7, cy + s * 0.1, cx - s / 40, cy + s / 2], fill=255)
        draw.rectangle([cx + s / 40, cy + s * 0.1, cx + s / 7, cy + s / 2], fill=255)
    elif shape == "car":  # body, cabin, two wheels
        draw.rectangle([cx - s, cy - s / 6, cx + s, cy + s / 5], fill=255)
        draw.polygon([(cx - s / 2, cy - s / 6), (cx - s / 3, cy - s / 2.2), (cx + s / 3, cy - s / 2.2),
                      (cx + s / 1.8, cy - s / 6)], fill=255)
        for wheel in (cx - s * 0.6, cx + s * 0.6):
            draw.ellipse([wheel - s / 5, cy, wheel + s / 5, cy + s / 2.5], fill=255)
    else:
        raise ValueError(f"shape must be one of {OBJECT_SHAPES}, got {shape!r}")
    return mask


def object_mask(shape: str, width: int, height: int, fraction: float) -> PIL.Image.Image:
    """A centred hole shaped like what people remove from photos (`OBJECT_SHAPES`: a square, a disk, a thick
    stroke, a person, a car) covering about `fraction` of a width × height photo (its scale found by bisection);
    mode L, white = hole. For tests and benchmarks at the sizes users bring."""
    low, high = 0.0, 3.0
    for _ in range(18):
        middle = (low + high) / 2
        area = np.asarray(_draw_object(shape, width, height, middle)).astype(bool).mean()
        low, high = (middle, high) if area < fraction else (low, middle)
    return _draw_object(shape, width, height, (low + high) / 2)
