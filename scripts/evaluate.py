#!/usr/bin/env python
"""Evaluate an inpainting model the way the literature reports it: per hole-area bin, beside classical baselines.

    python scripts/evaluate.py --model DIR_OR_REPO --images val/ --masks masks/irregular/ --output eval/ \\
        [--resolution 256] [--limit 200] [--baselines telea,navier-stokes] [--seed 0] [--lpips WEIGHTS]

Images are centre-cropped and resized to the resolution (as the official test does), masks resized with nearest
neighbour (white = hole). With NVIDIA irregular masks (file number N: bin N // 2000 = 1–10 %, …, 50–60 %) every image
is paired with one seeded, randomly chosen mask of every bin; other masks are paired one per image (seeded) and
binned by their measured hole area. Per image and method: PSNR and SSIM of the composite (torchmetrics, data_range
1), L1 (%) = mean |composite − truth| over all pixels × 100, hole L1 = the same over hole pixels only, and with
--lpips the LPIPS (VGG) distance (rfr_pipeline.lpips, weights from scripts/prepare_vgg16.py).
Writes metrics.json, metrics.csv (one row per image and method), metrics.md (the table) and grid-<bin>.png examples
(masked / each method / truth). The classical baselines are OpenCV's Telea and Navier–Stokes inpainting
(`pip install opencv-python-headless`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from tqdm.auto import tqdm

from rfr_pipeline import RFRInpaintPipeline
from rfr_pipeline.atomic import atomic_file
from rfr_pipeline.data import IMAGE_SUFFIXES
from rfr_pipeline.image_processing import prepare_mask

logger = logging.getLogger("evaluate")
BINS = ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%"]
BASELINES = {"telea": "INPAINT_TELEA", "navier-stokes": "INPAINT_NS"}


def nvidia_bin(path: Path) -> int | None:
    """The hole-area bin of an NVIDIA irregular mask from its file number (N // 2000), or None for other names."""
    match = re.fullmatch(r"(\d+)", path.stem)
    if match is None:
        return None
    number = int(match.group(1))
    return number // 2000 if number < 12000 else None


def measured_bin(hole: np.ndarray) -> int:
    return int(min(max(np.ceil(hole.mean() * 10) - 1, 0), len(BINS) - 1))


def load_photo(path: Path, resolution: int) -> np.ndarray:
    with PIL.Image.open(path) as image:
        image = image.convert("RGB")
        w, h = image.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        return np.array(image.resize((resolution, resolution), PIL.Image.Resampling.BICUBIC, box=box))


def load_mask(path: Path, resolution: int) -> np.ndarray:
    with PIL.Image.open(path) as image:
        hole = prepare_mask(image).numpy()
    resized = PIL.Image.fromarray(hole.astype(np.uint8) * 255).resize((resolution, resolution),
                                                                       PIL.Image.Resampling.NEAREST)
    return np.asarray(resized) > 127


def pair_images_with_masks(images: list[Path], masks: list[Path], seed: int) -> list[tuple[Path, Path, int | None]]:
    """(image, mask, bin or None) triples, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    by_bin = defaultdict(list)
    for mask in masks:
        by_bin[nvidia_bin(mask)].append(mask)
    if None not in by_bin:  # NVIDIA masks: every image with one mask of every bin
        return [(image, by_bin[b][int(rng.integers(len(by_bin[b])))], b)
                for image in images for b in sorted(by_bin)]
    return [(image, masks[int(rng.integers(len(masks)))], None) for image in images]


def metrics(comp: np.ndarray, truth: np.ndarray, hole: np.ndarray, lpips=None) -> dict[str, float]:
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    c = torch.tensor(comp).permute(2, 0, 1)[None].double() / 255
    t = torch.tensor(truth).permute(2, 0, 1)[None].double() / 255
    error = (c - t).abs()
    psnr = peak_signal_noise_ratio(c, t, data_range=1.0).item()
    values = {
        "psnr": psnr,
        "ssim": structural_similarity_index_measure(c, t, data_range=1.0).item(),
        "l1_percent": 100 * error.mean().item(),
        "hole_l1": error[:, :, torch.from_numpy(hole)].mean().item() if hole.any() else 0.0,
    }
    if lpips is not None:
        with torch.no_grad():
            values["lpips"] = lpips(c.float(), t.float()).item()
    return values


def run_baseline(name: str, photo: np.ndarray, hole: np.ndarray) -> np.ndarray:
    import cv2

    bgr = np.ascontiguousarray(photo[..., ::-1])
    out = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, getattr(cv2, BASELINES[name]))
    return np.ascontiguousarray(out[..., ::-1])


METRICS = ("psnr", "ssim", "l1_percent", "hole_l1", "lpips")


def summarise(rows: list[dict]) -> dict:
    table = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for key in (k for k in METRICS if k in row):
            table[(row["bin"], row["method"])][key].append(row[key])
            table[("all", row["method"])][key].append(row[key])
    return {f"{b}|{m}": {k: float(np.mean([v for v in values if np.isfinite(v)]) if values else "nan")
                         for k, values in stats.items()} | {"count": len(stats["psnr"])}
            for (b, m), stats in table.items()}


def markdown_table(summary: dict, methods: list[str]) -> str:
    with_lpips = any("lpips" in s for s in summary.values())
    lines = ["| hole area | method | PSNR ↑ | SSIM ↑ | L1 (%) ↓ | hole L1 ↓ |" + (" LPIPS ↓ |" if with_lpips else "")
             + " images |", "|---|---|---|---|---|---|---|" + ("---|" if with_lpips else "")]
    for b in [*BINS, "all"]:
        for m in methods:
            s = summary.get(f"{b}|{m}")
            if s:
                lines.append(f"| {b} | {m} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['l1_percent']:.2f} | "
                             f"{s['hole_l1']:.4f} |" + (f" {s['lpips']:.4f} |" if with_lpips else "")
                             + f" {s['count']} |")
    return "\n".join(lines) + "\n"


def losses_to_baselines(summary: dict, method: str, baselines: list[str], bins: list[str]) -> list[str]:
    """Where `method` does not beat every baseline on PSNR, SSIM and L1 (%): one line per (bin, baseline, metric)."""
    better = {"psnr": max, "ssim": max, "l1_percent": min}
    lost = []
    for b in bins:
        ours = summary.get(f"{b}|{method}")
        for baseline in baselines:
            theirs = summary.get(f"{b}|{baseline}")
            if ours is None or theirs is None:
                lost.append(f"{b}: no {method if ours is None else baseline} results")
                continue
            for metric, best in better.items():
                if ours[metric] == theirs[metric] or best(ours[metric], theirs[metric]) != ours[metric]:
                    lost.append(f"{b}: {metric} {ours[metric]:.4f} vs {baseline} {theirs[metric]:.4f}")
    return lost


def verdict(summary: dict, methods: list[str]) -> str:
    """A sentence for the report: does the model beat the classical baselines in every bin from 10 % to 60 %?"""
    baselines = [m for m in methods if m in BASELINES]
    if "rfr-net" not in methods or not baselines:
        return ""
    lost = losses_to_baselines(summary, "rfr-net", baselines, BINS[1:])
    names = " and ".join(baselines)
    if not lost:
        return f"\nrfr-net beats {names} on PSNR, SSIM and L1 in every bin from 10 % to 60 %.\n"
    return f"\nrfr-net does **not** beat {names} everywhere from 10 % to 60 %:\n" + "".join(f"- {x}\n" for x in lost)


def write_atomically(path: Path, write) -> None:
    """`write(tmp_path)`, then rename over `path`: an interrupted run never leaves a half-written file."""
    with atomic_file(path) as tmp:
        write(tmp)


def save_grid(path: Path, examples: list[list[np.ndarray]]) -> None:
    rows = [np.concatenate(row, axis=1) for row in examples]
    write_atomically(path, lambda tmp: PIL.Image.fromarray(np.concatenate(rows, axis=0)).save(tmp, format="PNG"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub repo id (omit to evaluate only the baselines)")
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--limit", type=int, help="evaluate the first N images (sorted by name)")
    parser.add_argument("--baselines", default="telea,navier-stokes", help="comma-separated; '' for none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grid_examples", type=int, default=4, help="examples per bin in the PNG grids")
    parser.add_argument("--lpips", type=Path, metavar="WEIGHTS",
                        help="also report LPIPS (VGG): the file of scripts/prepare_vgg16.py (VGG16 + LPIPS heads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        parser.error(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
    if not args.model and not baselines:
        parser.error("nothing to evaluate: give --model and/or --baselines")
    images = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    masks = sorted(p for p in args.masks.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images or not masks:
        parser.error(f"no images in {args.images}" if not images else f"no masks in {args.masks}")

    lpips = None
    if args.lpips:
        from rfr_pipeline.lpips import LPIPS

        try:
            lpips = LPIPS.from_file(args.lpips)
        except (OSError, ValueError) as err:
            parser.error(f"--lpips: {err}")
    pipe = None
    if args.model:
        pipe = RFRInpaintPipeline.from_pretrained(args.model).to(args.device)
        pipe.set_progress_bar_config(disable=True)
    methods = (["rfr-net"] if pipe else []) + baselines
    args.output.mkdir(parents=True, exist_ok=True)

    rows, grids, failures = [], defaultdict(list), []
    for image_path, mask_path, bin_index in tqdm(pair_images_with_masks(images, masks, args.seed), desc="evaluating"):
        try:
            photo = load_photo(image_path, args.resolution)
            hole = load_mask(mask_path, args.resolution)
        except (OSError, ValueError, SyntaxError) as err:
            failures.append(f"{image_path.name} / {mask_path.name}: {err}")
            tqdm.write(f"skipped {image_path.name} with {mask_path.name}: {err}", file=sys.stderr)
            continue
        if not hole.any():
            continue
        bin_index = measured_bin(hole) if bin_index is None else bin_index
        results = {}
        if pipe is not None:
            results["rfr-net"] = np.asarray(pipe(photo, hole, strategy="original").images[0])
        for name in baselines:
            results[name] = run_baseline(name, photo, hole)
        for method, comp in results.items():
            rows.append({"image": image_path.name, "mask": mask_path.name, "bin": BINS[bin_index],
                         "hole_fraction": float(hole.mean()), "method": method, **metrics(comp, photo, hole, lpips)})
        if len(grids[bin_index]) < args.grid_examples:
            masked = np.where(hole[..., None], 255, photo).astype(np.uint8)
            grids[bin_index].append([masked, *results.values(), photo])

    summary = summarise(rows)
    report = {"methods": methods, "resolution": args.resolution, "seed": args.seed, "summary": summary,
              "skipped": failures, "per_image": rows}
    write_atomically(args.output / "metrics.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1)))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

    write_atomically(args.output / "metrics.csv", write_csv)
    table = markdown_table(summary, methods) + verdict(summary, methods)
    header = f"Grids show, per row: masked / {' / '.join(methods)} / truth.\n\n"
    write_atomically(args.output / "metrics.md", lambda tmp: tmp.write_text(header + table))
    for bin_index, examples in grids.items():
        save_grid(args.output / f"grid-{BINS[bin_index].replace('%', 'pct')}.png", examples)
    print(table)
    if failures:
        print(f"{len(failures)} image/mask pairs could not be read:\n  " + "\n  ".join(failures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
