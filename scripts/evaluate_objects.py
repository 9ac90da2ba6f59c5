#!/usr/bin/env python
"""Object removal where the truth is known: shapes of what people remove (a person, a car, a disk, ...) placed on
photos that never had them, filled by the pipeline and by OpenCV, measured against the photo.

    python scripts/evaluate_objects.py --model scenes --images ../shared/data/scenes/val --limit 25 --upscale 4 \\
        --objects person,car,disk --fraction 0.05 --output objects.json [--no_object_anchoring]

Each photo is scaled up `--upscale` times (bicubic) so that its holes reach the network through windows scaled
down as a phone photo's do (`--upscale 1`: real photos at their own size); each object
(`rfr_pipeline.masks.object_mask`) covers `--fraction` of it, at a seeded random place. Per object: PSNR and SSIM of
the composite, hole L1 (rfr_pipeline.evaluation), and the colour bias: the largest per-channel mean error over the
hole, in levels of 255 (a fill that is darker or tinted everywhere, as a removed person's ghost is, has a large one).
`--no_object_anchoring` serves without the colour anchoring of windows scaled more than 2×
(`pipeline_rfr_inpaint.ANCHORED_SCALE`), for comparison (docs/large-images.md); `--examples DIR` saves each fill
beside the baselines' and the photo, around the object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import PIL.Image

from rfr_pipeline.atomic import atomic_file
from rfr_pipeline.data import list_images
from rfr_pipeline.evaluation import BASELINES, image_metrics, parse_baselines, run_baseline
from rfr_pipeline.masks import OBJECT_SHAPES, object_mask

METRICS = ("psnr", "ssim", "hole_l1", "colour_bias")


def placed_object(shape: str, width: int, height: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(height, width) bool: the object, moved to a random place that keeps it 8 px inside the photo."""
    hole = np.asarray(object_mask(shape, width, height, fraction)) > 127
    ys, xs = np.nonzero(hole)
    dy = int(rng.integers(8 - ys.min(), height - 8 - ys.max())) if height - 16 > ys.max() - ys.min() else 0
    dx = int(rng.integers(8 - xs.min(), width - 8 - xs.max())) if width - 16 > xs.max() - xs.min() else 0
    return np.roll(hole, (dy, dx), (0, 1))


def measure(fill: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    metrics = image_metrics(fill, truth, hole)
    bias = np.abs((fill[hole].astype(np.float64) - truth[hole].astype(np.float64)).mean(axis=0)).max()
    return {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "hole_l1": metrics["hole_l1"], "colour_bias": bias}


def example_strip(truth: np.ndarray, hole: np.ndarray, fills: dict[str, np.ndarray], height: int = 320):
    """Side by side, around the object (a quarter of its size as margin): the photo with the object's outline in
    magenta, each method's fill, and the photo itself, each `height` px high."""
    from scipy import ndimage

    ys, xs = np.nonzero(hole)
    margin = (ys.max() - ys.min()) // 4
    top, left = max(0, ys.min() - margin), max(0, xs.min() - margin)
    bottom, right = ys.max() + margin + 1, xs.max() + margin + 1
    outlined = truth.copy()
    outlined[hole & ~ndimage.binary_erosion(hole, iterations=max(1, margin // 40))] = (255, 0, 255)
    crops = [PIL.Image.fromarray(np.ascontiguousarray(a[top:bottom, left:right]))
             for a in (outlined, *fills.values(), truth)]
    width = round(crops[0].width * height / crops[0].height)
    strip = PIL.Image.new("RGB", (width * len(crops), height))
    for n, crop in enumerate(crops):
        strip.paste(crop.resize((width, height), PIL.Image.Resampling.LANCZOS), (n * width, 0))
    return strip


def measure_all(pipe, photos, objects, baselines, args) -> list[dict]:
    rng = np.random.default_rng(args.seed)
    rows = []
    for path in photos:
        photo = PIL.Image.open(path).convert("RGB")
        photo = photo.resize((photo.width * args.upscale, photo.height * args.upscale), PIL.Image.Resampling.BICUBIC)
        truth = np.asarray(photo)
        for shape in objects:
            hole = placed_object(shape, photo.width, photo.height, args.fraction, rng)
            fills = {"rfr-net": np.asarray(pipe(photo, PIL.Image.fromarray(hole)).images[0])}
            fills.update({name: run_baseline(name, truth, hole) for name in baselines})
            rows += [{"photo": path.name, "object": shape, "method": method, **measure(fill, truth, hole)}
                     for method, fill in fills.items()]
            if args.examples:
                with atomic_file(args.examples / f"{path.stem}_{shape}.jpg") as tmp:
                    example_strip(truth, hole, fills).save(tmp, "JPEG", quality=90)
        print(f"{path.name}: done", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="scenes", help="an embedded model by name (scenes, faces), a pipeline "
                                                          "folder or a Hub repo id")
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--limit", type=int, default=25, help="the first N photos (sorted by name)")
    parser.add_argument("--upscale", type=int, default=4, help="scale each photo up this many times first")
    parser.add_argument("--objects", default="person,car,disk", help=f"comma-separated, of {', '.join(OBJECT_SHAPES)}")
    parser.add_argument("--fraction", type=float, default=0.05, help="the share of the photo each object covers")
    parser.add_argument("--baselines", default="telea", help=f"comma-separated, of {', '.join(BASELINES)}; '' for none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_object_anchoring", action="store_true",
                        help="serve without anchoring the colour of windows scaled more than 2× (for comparison)")
    parser.add_argument("--output", required=True, type=Path, help="the report (JSON)")
    parser.add_argument("--examples", type=Path, metavar="DIR",
                        help="also save each fill as a JPEG strip around the object: the photo with the object's "
                             "outline, the pipeline's fill, each baseline's, the photo")
    args = parser.parse_args(argv)
    objects = [name.strip() for name in args.objects.split(",") if name.strip()]
    if set(objects) - set(OBJECT_SHAPES) or not objects:
        parser.error(f"--objects takes some of {', '.join(OBJECT_SHAPES)}, got {args.objects!r}")
    try:
        baselines = parse_baselines(args.baselines)
    except ValueError as err:
        parser.error(str(err))
    if not 0 < args.fraction < 1:
        parser.error(f"--fraction is a share of the photo, between 0 and 1, got {args.fraction}")
    if args.upscale < 1:
        parser.error(f"--upscale must be 1 or more, got {args.upscale}")
    try:
        photos = list_images([args.images], what="images")[: args.limit]
    except ValueError as err:
        parser.error(str(err))

    from rfr_pipeline import RFRInpaintPipeline, pipeline_rfr_inpaint
    from rfr_pipeline.jobs import UsageError, resolve_model

    try:
        pipe = RFRInpaintPipeline.from_pretrained(resolve_model(args.model))
    except UsageError as err:
        parser.error(str(err))
    pipe.set_progress_bar_config(disable=True)
    anchored_scale = pipeline_rfr_inpaint.ANCHORED_SCALE
    if args.no_object_anchoring:
        pipeline_rfr_inpaint.ANCHORED_SCALE = float("inf")
    try:
        rows = measure_all(pipe, photos, objects, baselines, args)
    finally:  # (main may be called in a process that goes on serving)
        pipeline_rfr_inpaint.ANCHORED_SCALE = anchored_scale
    summary = defaultdict(dict)
    for shape in [*objects, "all"]:
        for method in ["rfr-net", *baselines]:
            mine = [r for r in rows if r["method"] == method and shape in (r["object"], "all")]
            summary[shape][method] = {k: float(np.mean([r[k] for r in mine])) for k in METRICS}
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "rows": rows}
    with atomic_file(args.output) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    for shape, methods in summary.items():
        for method, values in methods.items():
            print(f"{shape:8s} {method:14s} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
