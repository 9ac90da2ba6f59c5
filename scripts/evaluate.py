#!/usr/bin/env python
"""Evaluate an inpainting model the way the literature reports it: per hole-area bin, beside classical baselines.

    python scripts/evaluate.py --model DIR_OR_REPO --images val/ --masks masks/irregular/ --output eval/ \\
        [--dataset_name HUB_ID_OR_PATH --dataset_split test instead of --images] [--resolution 256] [--limit 200] [--baselines telea,navier-stokes,patchmatch] [--seed 0] [--lpips WEIGHTS] [--strategy S]
        [--flip_average | --no-flip_average] [--no-restore_detail] [--masks_per_image 1] [--bins 50-60%]

Images are centre-cropped and resized to the resolution (as the official test does; `--resolution 0`: at their own
size), masks resized with nearest neighbour (white = hole). With NVIDIA irregular masks (file number N: bin N // 2000 =
1–10 %, …, 50–60 %) every image is paired with one seeded, randomly chosen mask of every bin (`--masks_per_image`); other masks are paired one per image (seeded) and
binned by their measured hole area (over 60 %: a bin of its own). Per image and method: PSNR and SSIM of the
composite, L1 (%) over all pixels, hole L1, hole detail (the fill's fine texture as a fraction of the photo's there;
definitions in rfr_pipeline/evaluation.py), and with --lpips the LPIPS
(VGG) distance (rfr_pipeline.lpips, weights from scripts/prepare_vgg16.py).
Writes metrics.json, metrics.csv (one row per image and method), metrics.md (the table) and grid-<bin>.png examples
(masked / each method / truth). The baselines are OpenCV's Telea and Navier–Stokes inpainting
(`pip install opencv-python-headless`) and PatchMatch exemplar filling, the family behind photo editors' content-aware
fill (`pip install pypatchmatch`); `pip install 'rfr-pipeline[eval]'` installs both.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rfr_pipeline import RFRInpaintPipeline
from rfr_pipeline.atomic import atomic_file
from rfr_pipeline.data import add_dataset_arguments, list_images, load_images
from rfr_pipeline.evaluation import (
    BASELINES,
    BINS,
    NVIDIA_BINS,
    StoredImage,
    methods_metrics,
    load_mask,
    load_photo,
    margins_table,
    markdown_table,
    measured_bin,
    paired_margins,
    parse_baselines,
    pair_images_with_masks,
    run_baseline,
    save_grid,
    summarise,
    verdict,
)
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES

logger = logging.getLogger("evaluate")


def evaluate_pairs(pairs, pipe, strategy, baselines: list[str], resolution: int, lpips, grid_examples: int,
                   flip_average: bool | None = None, restore_detail: bool = True, done=frozenset(), on_rows=None):
    """Per-image metric rows of every method, example grids by bin, and the pairs that could not be read. Pairs in
    `done` ((image name, mask name)) are skipped; `on_rows(rows)` gets each pair's rows as soon as they exist."""
    rows, grids, failures = [], defaultdict(list), []
    for image_path, mask_path, bin_index in tqdm(pairs, desc="evaluating"):
        if (image_path.name, mask_path.name) in done:
            continue
        try:
            photo = load_photo(image_path, resolution)
            hole = load_mask(mask_path, resolution or (photo.shape[1], photo.shape[0]))
        except (OSError, ValueError, SyntaxError) as err:
            failures.append(f"{image_path.name} / {mask_path.name}: {err}")
            tqdm.write(f"skipped {image_path.name} with {mask_path.name}: {err}", file=sys.stderr)
            continue
        if not hole.any():
            continue
        bin_index = measured_bin(hole) if bin_index is None else bin_index
        results = {}
        if pipe is not None:
            results["rfr-net"] = np.asarray(pipe(photo, hole, strategy=strategy, flip_average=flip_average,
                                                     restore_detail=restore_detail).images[0])
        for name in baselines:
            results[name] = run_baseline(name, photo, hole)
        pair_rows = [{"image": image_path.name, "mask": mask_path.name, "bin": BINS[bin_index],
                      "hole_fraction": float(hole.mean()), "method": method, **metrics}
                     for method, metrics in zip(results, methods_metrics(list(results.values()), photo, hole, lpips))]
        rows += pair_rows
        if on_rows is not None:
            on_rows(pair_rows)
        if resolution and len(grids[bin_index]) < grid_examples:  # (at resolution 0 the photos differ in size)
            masked = np.where(hole[..., None], 255, photo).astype(np.uint8)
            grids[bin_index].append([masked, *results.values(), photo])
    return rows, grids, failures


PROGRESS = "per_image.jsonl"  # a line of settings, then each pair's metric rows as they are measured


def read_progress(path: Path, settings: dict) -> list[dict]:
    """The rows an earlier, interrupted run of the same evaluation wrote (none if there is no such file); a file
    written with other settings is an error rather than mixed in."""
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):  # the line being written when the run was killed: gone, then appended to
        text = text[: text.rfind("\n") + 1]
        with open(path, "r+") as f:
            f.truncate(len(text.encode()))
    lines = text.splitlines()
    if not lines:  # killed before its settings were written: nothing measured yet
        return []
    try:
        first = json.loads(lines[0])["settings"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path} is not an evaluation's progress file (its first line is not the settings); use "
                         "another --output, or delete the file to start again") from None
    if first != settings:
        raise ValueError(f"{path} holds results of another evaluation ({first}); use another --output, or delete "
                         "the file to start again")
    rows = []
    for line in lines[1:]:
        rows.append(json.loads(line))
    methods = defaultdict(set)  # a pair counts as done only with every method's row
    for row in rows:
        methods[(row["image"], row["mask"])].add(row["method"])
    return [row for row in rows if methods[(row["image"], row["mask"])] == set(settings["methods"])]


def dataset_images(args) -> list[StoredImage]:
    """The photos of --dataset_name's split (its first --limit rows), named by split and row."""
    table, column = load_images(args.dataset_name, args.dataset_config_name, args.dataset_split, args.image_column,
                                args.cache_dir, streaming=args.streaming)
    rows = table.take(args.limit) if args.streaming else table.select(range(min(args.limit or len(table), len(table))))
    images = [StoredImage(f"{args.dataset_split}-{index:06d}", row[column]) for index, row in enumerate(rows)]
    if not images:
        raise ValueError(f"the split {args.dataset_split!r} of {args.dataset_name!r} has no rows")
    return images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder, Hub repo id, or an embedded model by name (scenes, faces); "
                                        "omit to evaluate only the baselines")
    parser.add_argument("--images", type=Path, help="a folder of photos (searched recursively)")
    add_dataset_arguments(parser, instead_of="--images", split="test",
                          streaming="read the dataset as a stream: only the --limit photos evaluated are downloaded")
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--resolution", type=int, default=256,
                        help="side of the centre square each photo is resized to; 0: photos at their own size "
                             "(masks resized to each; no example grids)")
    parser.add_argument("--masks_per_image", type=int, default=1, help="NVIDIA masks per bin for each photo")
    parser.add_argument("--bins", nargs="+", metavar="BIN", choices=BINS[:NVIDIA_BINS],
                        help="with NVIDIA masks, evaluate only these hole-area bins (e.g. 50-60%%): the same "
                             "photo/mask pairs a run of every bin makes, so the rows pair with it (and the run can "
                             "be continued into one of every bin)")
    parser.add_argument("--limit", type=int, help="evaluate the first N images (sorted by name; a dataset's first rows)")
    parser.add_argument("--baselines", default="telea,navier-stokes,patchmatch",
                        help=f"comma-separated, of {', '.join(BASELINES)}; '' for none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="how the pipeline serves each photo (default: the model's own default_strategy)")
    parser.add_argument("--flip_average", action=argparse.BooleanOptionalAction,
                        help="average each fill with its mirror image's (default: the model's default_flip_average)")
    parser.add_argument("--restore_detail", action=argparse.BooleanOptionalAction, default=True,
                        help="add back the detail lost where a window was scaled down (the pipeline's default: on)")
    parser.add_argument("--grid_examples", type=int, default=4, help="examples per bin in the PNG grids")
    parser.add_argument("--lpips", type=Path, metavar="WEIGHTS",
                        help="also report LPIPS (VGG): the file of scripts/prepare_vgg16.py (VGG16 + LPIPS heads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    try:
        baselines = parse_baselines(args.baselines)
    except ValueError as err:
        parser.error(str(err))
    if not args.model and not baselines:
        parser.error("nothing to evaluate: give --model and/or --baselines")
    if args.resolution < 0:
        parser.error(f"--resolution must be a size in pixels, or 0 for photos at their own size, got {args.resolution}")
    if args.grid_examples < 0:
        parser.error(f"--grid_examples must be 0 (no grids) or more, got {args.grid_examples}")
    if args.masks_per_image < 1:
        parser.error(f"--masks_per_image must be 1 or more, got {args.masks_per_image}")
    if (args.images is None) == (args.dataset_name is None):
        parser.error("name the photos with --images (a folder) or --dataset_name (🤗 Datasets), one of them")
    if args.streaming and (args.dataset_name is None or args.limit is None):
        parser.error("--streaming reads the first --limit rows of a --dataset_name")
    try:
        images = (list_images([args.images], what="images")[: args.limit] if args.images is not None
                  else dataset_images(args))
        masks = list_images([args.masks], what="masks")
    except ValueError as err:
        parser.error(str(err))
    pairs = pair_images_with_masks(images, masks, args.seed, args.masks_per_image)
    if args.bins:
        if any(bin_index is None for _, _, bin_index in pairs):
            parser.error("--bins needs NVIDIA irregular masks (files numbered 00000-11999, binned by number); "
                         f"the masks in {args.masks} are binned by their measured area after filling")
        pairs = [pair for pair in pairs if BINS[pair[2]] in args.bins]  # drawn for every bin first: same masks

    lpips = None
    if args.lpips:
        from rfr_pipeline.lpips import LPIPS

        try:
            lpips = LPIPS.from_file(args.lpips)
        except (OSError, ValueError) as err:
            parser.error(f"--lpips: {err}")
    pipe = None
    if args.model:
        from rfr_pipeline.jobs import UsageError, resolve_model

        try:
            args.model = resolve_model(args.model)  # an embedded model by name (scenes, faces), a folder, a repo id
        except UsageError as err:
            parser.error(str(err))
        pipe = RFRInpaintPipeline.from_pretrained(args.model).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        args.strategy = args.strategy or pipe.config.default_strategy
        args.flip_average = pipe.config.default_flip_average if args.flip_average is None else args.flip_average
    methods = (["rfr-net"] if pipe else []) + baselines
    args.output.mkdir(parents=True, exist_ok=True)

    settings = {"model": args.model, "methods": methods, "resolution": args.resolution, "seed": args.seed,
                "masks_per_image": args.masks_per_image, "strategy": args.strategy, "flip_average": args.flip_average,
                "restore_detail": args.restore_detail, "lpips": bool(lpips)}
    try:
        earlier = read_progress(args.output / PROGRESS, settings)
    except ValueError as err:
        parser.error(str(err))
    with open(args.output / PROGRESS, "a") as progress:
        if not earlier:
            progress.write(json.dumps({"settings": settings}) + "\n")

        def record(pair_rows):  # each pair's rows on disk at once: a crash or a kill loses the pair in flight only
            progress.write("".join(json.dumps(row) + "\n" for row in pair_rows))
            progress.flush()

        done = {(row["image"], row["mask"]) for row in earlier}
        if done:
            print(f"continuing: {len(done)} image/mask pairs already evaluated in {args.output / PROGRESS}")
        rows, grids, failures = evaluate_pairs(pairs, pipe, args.strategy, baselines, args.resolution, lpips,
                                               args.grid_examples, args.flip_average, args.restore_detail, done,
                                               record)
    wanted = {(image.name, mask.name) for image, mask, _ in pairs}
    rows = [row for row in earlier if (row["image"], row["mask"]) in wanted] + rows

    summary = summarise(rows)
    margins = paired_margins(rows, "rfr-net", baselines, BINS, args.seed) if pipe else {}
    report = {"methods": methods, "resolution": args.resolution, "seed": args.seed, "strategy": args.strategy,
              "flip_average": args.flip_average, "restore_detail": args.restore_detail, "summary": summary,
              "margins": margins, "skipped": failures, "per_image": rows}
    with atomic_file(args.output / "metrics.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    with atomic_file(args.output / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    table = (markdown_table(summary, methods) + verdict(summary, methods)
             + margins_table(margins, "rfr-net", baselines, BINS))
    with atomic_file(args.output / "metrics.md") as tmp:
        tmp.write_text(f"Grids show, per row: masked / {' / '.join(methods)} / truth.\n\n" + table)
    for bin_index, examples in grids.items():
        if examples:
            save_grid(args.output / f"grid-{BINS[bin_index].replace('%', 'pct')}.png", examples)
    print(table)
    if failures:
        print(f"{len(failures)} image/mask pairs could not be read:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
