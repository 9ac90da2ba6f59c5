#!/usr/bin/env python
"""The example grids of docs/quality.md: one photo, several masks; per row masked / RFR-Net / each baseline / original
(Telea and Navier–Stokes unless `--baselines` names others, e.g. `telea,navier-stokes,patchmatch`).

    python scripts/make_example_grid.py --model rfr_pipeline/faces_model --image examples/astronaut_photo.png \\
        --mask examples/astronaut_mask.png --strokes 0.25:1 0.45:2 --resolution 256 \\
        --output docs/results/faces_model/example-grid.png

`--strokes AREA:SEED` adds a row with a generated free-form mask (thin and thick strokes, like the NVIDIA test masks)
covering about AREA of the image. Photos and masks are prepared exactly as scripts/evaluate.py does (centre square,
resized), or with `--resolution 0` taken as they are (strokes drawn on a square and cropped to the photo); the pipeline
serves them with the model's own defaults unless `--strategy` names one. The output is a PNG, or a JPEG when its
name ends in .jpg (grids of large photos).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps

from rfr_pipeline import RFRInpaintPipeline
from rfr_pipeline.evaluation import BASELINES, load_mask, load_photo, parse_baselines, run_baseline, save_grid
from rfr_pipeline.masks import free_form_mask
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES


def stroke_spec(text: str) -> tuple[float, int]:
    try:
        area, seed = text.split(":")
        area, seed = float(area), int(seed)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AREA:SEED such as 0.25:1, got {text!r}") from None
    if not 0 < area < 1:
        raise argparse.ArgumentTypeError(f"AREA must be between 0 and 1, got {area}")
    return area, seed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="pipeline folder or Hub repo id")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--mask", type=Path, nargs="*", default=[], help="mask files (white = hole)")
    parser.add_argument("--strokes", type=stroke_spec, nargs="*", default=[], metavar="AREA:SEED")
    parser.add_argument("--resolution", type=int, default=256,
                        help="centre square resized to this size, as scripts/evaluate.py does; 0: the photo as it is")
    parser.add_argument("--strategy", choices=STRATEGIES, help="how the pipeline serves the photo (default: the "
                                                                "model's own default, as a user's call)")
    parser.add_argument("--baselines", default="telea,navier-stokes",
                        help=f"comma-separated, of {', '.join(BASELINES)}; '' for none")
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    if not args.mask and not args.strokes:
        parser.error("give at least one --mask or --strokes")
    try:
        baselines = parse_baselines(args.baselines)
    except ValueError as err:
        parser.error(str(err))
    for path in [args.image, *args.mask]:
        if not path.is_file():
            parser.error(f"{path} is not a file")

    if args.resolution:
        photo = load_photo(args.image, args.resolution)
    else:
        with PIL.Image.open(args.image) as image:
            photo = np.array(PIL.ImageOps.exif_transpose(image).convert("RGB"))
    height, width = photo.shape[:2]
    holes = [load_mask(path, (width, height)) for path in args.mask]
    side = max(height, width)  # strokes drawn on a square, cropped to the photo
    holes += [free_form_mask(side, np.random.default_rng(seed), (area, area), brush=(2, 24))[:height, :width]
              for area, seed in args.strokes]
    pipe = RFRInpaintPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for hole in holes:
        masked = np.where(hole[..., None], 255, photo).astype(np.uint8)
        ours = np.asarray(pipe(photo, hole, strategy=args.strategy).images[0])
        rows.append([masked, ours, *(run_baseline(name, photo, hole) for name in baselines), photo])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_grid(args.output, rows)
    print(f"wrote {args.output}: {len(rows)} rows of masked / rfr-net / {' / '.join(baselines)} / original")
    return 0


if __name__ == "__main__":
    sys.exit(main())
