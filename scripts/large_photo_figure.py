#!/usr/bin/env python
"""The large-photo figure (docs/large-images.md): one object removed from a full-size photo by RFR-Net with the
pipeline's default strategy and with "resize", beside OpenCV's Telea and Navier–Stokes, with what each cost.

    python scripts/large_photo_figure.py --image examples/dandelions_photo.jpg --mask examples/dandelions_mask.png \\
        --output docs/results/large_photo/dandelions.jpg

Top row: the whole photo (masked, then each method), scaled down; bottom row: the same full-resolution crop around
the hole's edge. Times are wall-clock seconds of one call on the already-decoded photo, after a first call that warms
up (the first use of each layer shape is timed to choose the fastest CPU kernels); they go to a JSON beside the
figure with the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline
from rfr_pipeline.atomic import atomic_file
from rfr_pipeline.evaluation import run_baseline


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--mask", required=True, type=Path, help="white = remove")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="pipeline folder or Hub repo id")
    parser.add_argument("--output", required=True, type=Path, help="the figure (.jpg); timings go to <output>.json")
    parser.add_argument("--crop", type=int, nargs=4, metavar=("LEFT", "TOP", "WIDTH", "HEIGHT"),
                        help="the full-resolution crop (default: 1/4 of the photo at the hole's right edge)")
    args = parser.parse_args()

    photo = PIL.Image.open(args.image).convert("RGB")
    mask = PIL.Image.open(args.mask).convert("L")
    hole = np.asarray(mask) > 127
    pipe = RFRInpaintPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    results, seconds = {}, {}
    for strategy in (pipe.config.default_strategy, "resize"):
        pipe(photo, mask, strategy=strategy)  # warm-up
        image, seconds[f"rfr-{strategy}"] = timed(lambda: pipe(photo, mask, strategy=strategy).images[0])
        results[f"RFR-Net ({strategy})"] = np.asarray(image)
    for name in ("telea", "navier-stokes"):  # OpenCV's (PatchMatch takes minutes on a photo of this size)
        results[f"OpenCV {name}"], seconds[name] = timed(lambda: run_baseline(name, np.asarray(photo), hole))

    width, height = photo.size
    rows, cols = np.nonzero(hole)
    if args.crop:
        left, top, crop_w, crop_h = args.crop
    else:
        crop_w, crop_h = width // 4, height // 4
        left = min(width - crop_w, max(0, int(cols.max()) - crop_w // 2))
        top = min(height - crop_h, max(0, int(rows.mean()) - crop_h // 2))
    masked = np.asarray(photo).copy()
    masked[hole] = (255, 51, 102)
    panels = [("masked", masked), *results.items()]
    thumb_w = 640
    thumb_h = round(height * thumb_w / width)
    crop_h_shown = round(crop_h * thumb_w / crop_w)
    figure = PIL.Image.new("RGB", (thumb_w * len(panels), thumb_h + crop_h_shown), "white")
    for n, (_, array) in enumerate(panels):
        image = PIL.Image.fromarray(array)
        figure.paste(image.resize((thumb_w, thumb_h), PIL.Image.Resampling.LANCZOS), (n * thumb_w, 0))
        crop = image.crop((left, top, left + crop_w, top + crop_h))
        figure.paste(crop.resize((thumb_w, crop_h_shown), PIL.Image.Resampling.LANCZOS), (n * thumb_w, thumb_h))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(args.output) as tmp:
        figure.save(tmp, format="JPEG", quality=90)
    record = {"panels": [name for name, _ in panels], "seconds": seconds, "photo": f"{width}x{height}",
              "hole_fraction": round(float(hole.mean()), 4), "crop": [left, top, crop_w, crop_h],
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()},
              "date": time.strftime("%Y-%m-%d")}
    with atomic_file(args.output.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["seconds"]))


if __name__ == "__main__":
    main()
