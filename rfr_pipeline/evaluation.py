"""Measuring inpainting the way the literature reports it: per hole-area bin, beside classical baselines.

Photos are centre-cropped and resized (bicubic) to a square resolution, as the official test does; masks are resized
with nearest neighbour (white = hole). Metrics are computed on the composite (the truth outside the hole): PSNR and
SSIM (torchmetrics, data range 1), L1 (%) = mean |composite − truth| over all pixels × 100, and hole L1 = the same
over the hole's pixels only. `scripts/evaluate.py` and `scripts/make_example_grid.py` are the command lines;
`scripts/train.py` validates with `composite_metrics`. Needs the `[eval]` extra (torchmetrics, OpenCV).
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from .atomic import atomic_file
from .image_processing import centre_square, prepare_mask

# NVIDIA irregular test masks come in six bins of 2,000 files (file number N: bin N // 2000); measured hole areas
# over 60 % get a bin of their own.
BINS = ["1-10%", "10-20%", "20-30%", "30-40%", "40-50%", "50-60%", "60-100%"]
NVIDIA_BINS = 6
# The baselines: OpenCV's classical diffusion-based inpainting (Telea; Navier–Stokes), and PatchMatch exemplar filling
# (Barnes et al., 2009: the family behind photo editors' "content-aware fill"), from PyPatchMatch.
# name: (the module it imports, the package that installs it)
BASELINES = {"telea": ("cv2", "opencv-python-headless"), "navier-stokes": ("cv2", "opencv-python-headless"),
             "patchmatch": ("patchmatch", "pypatchmatch")}
# PatchMatch compares patches of (2 × this + 1)² px: PyPatchMatch's examples' choice; 5 scored no better at 256²
# (4 photos × 3 bins) and took longer.
PATCHMATCH_RADIUS = 3
# The checkerboard measure's periods (px): transposed convolutions' 2 and 4, the network's 8- and 16-fold features.
CHECKER_PERIODS = (2, 4, 8, 16)
METRICS = ("psnr", "ssim", "l1_percent", "hole_l1", "hole_detail", "checkerboard", "lpips")


def nvidia_bin(path: Path) -> int | None:
    """The hole-area bin of an NVIDIA irregular mask from its file number (N // 2000), or None for other names."""
    match = re.fullmatch(r"(\d+)", path.stem)
    if match is None:
        return None
    number = int(match.group(1))
    return number // 2000 if number < 2000 * NVIDIA_BINS else None


def measured_bin(hole: np.ndarray) -> int:
    """The bin of a hole's measured area: 1-10 % (and anything smaller) … 50-60 %, then 60-100 %."""
    tenths = int(np.ceil(hole.mean() * 10)) - 1  # (0, 10 %] → 0, (10, 20 %] → 1, …
    return min(max(tenths, 0), len(BINS) - 1)


@dataclass(frozen=True)
class StoredImage:
    """A photo of a 🤗 Datasets table as the evaluation names and reads it: `name` (its split and row, stable across
    runs) and the image as stored ({"bytes", "path"}, see rfr_pipeline.data.load_images)."""

    name: str
    item: dict


def load_photo(path: Path | StoredImage, resolution: int) -> np.ndarray:
    """(resolution, resolution, 3) uint8: the photo's centre square, resized; resolution 0: the photo as it is."""
    if isinstance(path, StoredImage):
        path = io.BytesIO(path.item["bytes"]) if path.item.get("bytes") is not None else path.item["path"]
    with PIL.Image.open(path) as image:
        image = image.convert("RGB")
        return np.array(centre_square(image, resolution) if resolution else image)


def load_mask(path: Path, resolution: int | tuple[int, int]) -> np.ndarray:
    """(resolution, resolution) bool, True = hole; or (height, width) for resolution = (width, height)."""
    size = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    with PIL.Image.open(path) as image:
        hole = prepare_mask(image).numpy()
    resized = PIL.Image.fromarray(hole.astype(np.uint8) * 255).resize(size, PIL.Image.Resampling.NEAREST)
    return np.asarray(resized) > 127


def pair_images_with_masks(images: list[Path], masks: list[Path], seed: int,
                           per_image: int = 1) -> list[tuple[Path, Path, int | None]]:
    """(image, mask, bin or None) triples, deterministic for a seed. With NVIDIA masks every image gets `per_image`
    randomly chosen masks of every bin; other masks are paired `per_image` per image (their bin is measured later)."""
    rng = np.random.default_rng(seed)
    by_bin = defaultdict(list)
    for mask in masks:
        by_bin[nvidia_bin(mask)].append(mask)
    if None not in by_bin:
        return [(image, by_bin[b][int(rng.integers(len(by_bin[b])))], b)
                for image in images for b in sorted(by_bin) for _ in range(per_image)]
    return [(image, masks[int(rng.integers(len(masks)))], None) for image in images for _ in range(per_image)]


def composite_metrics(comp: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics of a batch: comp and truth (N, 3, H, W) in [0, 1], hole (N, 1, H, W), 1 = hole.
    Returns (N,) tensors: psnr (inf for a perfect composite), ssim, l1_percent, hole_l1 (0 without a hole) and
    hole_detail: the fine detail in the hole as a fraction of the photo's own there (the mean absolute difference
    between neighbouring pixels of the hole, composite over truth; 1 = as textured as the photo, below = smoother;
    NaN where the truth is flat in the hole) and checkerboard: the hole's energy in a checkerboard pattern,
    composite over truth, at the worst of the periods CHECKER_PERIODS (1 = as much as the photo has there; above =
    the chequered or blocky artefacts of transposed convolutions, at 2–4 px, and of the network's 8- and 16-fold
    downsampled features, which the paper's style loss can teach; NaN where the truth has none)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    # SSIM in float32: its 11×11 Gaussian filtering in float64 took 0.4 s per 256² image on the CPU, 30× float32's
    # time, for results equal to 1e-7 (the inputs are 8-bit values, exact in float32).
    ssim = structural_similarity_index_measure(comp.float(), truth.float(), data_range=1.0, reduction="none")
    comp, truth = comp.double(), truth.double()
    error = (comp - truth).abs()
    hole_pixels = hole.double().expand_as(error)
    return {
        "psnr": peak_signal_noise_ratio(comp, truth, data_range=1.0, reduction="none", dim=(1, 2, 3)),
        "ssim": ssim.double(),
        "l1_percent": 100 * error.mean(dim=(1, 2, 3)),
        "hole_l1": (error * hole_pixels).sum(dim=(1, 2, 3)) / hole_pixels.sum(dim=(1, 2, 3)).clamp(min=1),
        "hole_detail": _detail_ratio(comp, truth, hole),
        "checkerboard": _worst_checkerboard(comp, truth, hole),
    }


def _ratio(mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """mine / theirs, NaN where theirs is about 0 (nothing to compare with: `summarise` leaves those out)."""
    return torch.where(theirs > 1e-6, mine / theirs.clamp(min=1e-12), torch.full_like(mine, float("nan")))


def _worst_checkerboard(comp: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """(N,) the largest over CHECKER_PERIODS of the composite's checkerboard energy over the truth's (periods where
    the truth has none, or no window fits in the hole, are left out; NaN where none is left)."""
    tables = [_summed_area(x) for x in (comp.mean(dim=1), truth.mean(dim=1), hole[:, 0].to(comp.dtype))]
    ratios = torch.stack([_ratio(*_checkerboard_energies(*tables, period)) for period in CHECKER_PERIODS])
    worst = ratios.nan_to_num(nan=-torch.inf).amax(0)
    return torch.where(worst.isneginf(), torch.nan, worst)


def _summed_area(x: torch.Tensor) -> torch.Tensor:
    """(N, H + 1, W + 1): x's summed-area table, a row and a column of zeros first."""
    return torch.nn.functional.pad(x.cumsum(-2).cumsum(-1), (1, 0, 1, 0))


def _box_sums(table: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H - size + 1, W - size + 1): the sums over every size × size box, from a `_summed_area` table."""
    return (table[..., size:, size:] - table[..., :-size, size:] - table[..., size:, :-size]
            + table[..., :-size, :-size])


def _checkerboard_energies(comp_table, truth_table, hole_table, period: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) twice, composite's and truth's: the mean response of the luminance to a checkerboard of `period` px (±1
    in a chequer of squares period/2 px wide) over the windows that lie wholly in the hole (0 where none does), from
    summed-area tables (a convolution with a 16×16 kernel unrolled a 4-megapixel float64 photo into 8 GiB)."""
    k = period // 2
    inside = _box_sums(hole_table, period) > period**2 - 0.5
    count = inside.sum(dim=(1, 2)).clamp(min=1)
    energies = []
    for table in (comp_table, truth_table):
        quarters = _box_sums(table, k)  # a window's four squares are boxes k px apart
        response = (quarters[..., :-k, :-k] - quarters[..., :-k, k:] - quarters[..., k:, :-k]
                    + quarters[..., k:, k:]).abs() / period**2
        energies.append((response * inside).sum(dim=(1, 2)) / count)
    return energies[0], energies[1]


def _detail_ratio(comp: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """(N,) the composite's neighbour differences in the hole over the truth's; NaN where the truth is flat there (no
    texture to compare with: `summarise` leaves such images out of the mean)."""
    return _ratio(_neighbour_differences(comp, hole), _neighbour_differences(truth, hole))


def _neighbour_differences(images: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """(N,) mean absolute difference between horizontal and vertical neighbours that are both in the hole."""
    hole = hole.bool()
    total, count = 0, 0
    for dim in (-1, -2):
        length = images.shape[dim] - 1
        both = hole.narrow(dim, 0, length) & hole.narrow(dim, 1, length)
        difference = (images.narrow(dim, 1, length) - images.narrow(dim, 0, length)).abs()
        total = total + (difference * both).sum(dim=(1, 2, 3))
        count = count + both.sum(dim=(1, 2, 3)) * images.shape[1]
    return total / count.clamp(min=1)


def image_metrics(comp: np.ndarray, truth: np.ndarray, hole: np.ndarray, lpips=None) -> dict[str, float]:
    """`composite_metrics` of one (H, W, 3) uint8 composite, plus LPIPS when an `rfr_pipeline.lpips.LPIPS` is
    given."""
    return methods_metrics([comp], truth, hole, lpips)[0]


def methods_metrics(comps: list[np.ndarray], truth: np.ndarray, hole: np.ndarray, lpips=None) -> list[dict[str, float]]:
    """`image_metrics` of several methods' composites of one photo and hole, computed as one batch (the truth's
    LPIPS features once)."""
    c = torch.from_numpy(np.stack(comps)).permute(0, 3, 1, 2).double() / 255
    t = torch.from_numpy(np.ascontiguousarray(truth)).permute(2, 0, 1)[None].double() / 255
    holes = torch.from_numpy(np.ascontiguousarray(hole))[None, None].expand(len(comps), 1, *hole.shape)
    values = {k: v.tolist() for k, v in composite_metrics(c, t.expand_as(c), holes).items()}
    if lpips is not None:
        with torch.no_grad():
            values["lpips"] = lpips(c.float(), t.float()).tolist()
    return [{name: column[n] for name, column in values.items()} for n in range(len(comps))]


def run_baseline(name: str, photo: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """A baseline's fill (`name` in BASELINES) of an (H, W, 3) uint8 RGB photo's (H, W) bool hole: OpenCV's
    inpainting (radius 3), or PatchMatch (seeded, so a photo always gets the same fill)."""
    if name == "patchmatch":
        from patchmatch import patch_match

        patch_match.set_random_seed(0)
        return patch_match.inpaint(np.ascontiguousarray(photo), hole.astype(np.uint8), patch_size=PATCHMATCH_RADIUS)
    import cv2

    bgr = np.ascontiguousarray(photo[..., ::-1])
    flag = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[name]
    out = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, 3, flag)
    return np.ascontiguousarray(out[..., ::-1])


def parse_baselines(text: str) -> list[str]:
    """The baselines a comma-separated `--baselines` names ('' for none); ValueError, saying what is wrong and what
    is expected, for an unknown name or a baseline whose package is not installed."""
    import importlib.util

    names = [name.strip() for name in text.split(",") if name.strip()]
    if set(names) - set(BASELINES):
        raise ValueError(f"--baselines takes some of {', '.join(BASELINES)} (or ''), got {text!r}")
    for name in names:
        module, package = BASELINES[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"the baseline {name} needs {package}: pip install {package} (or 'rfr-pipeline[eval]'), "
                             "or leave it out of --baselines")
    return names


def summarise(rows: list[dict]) -> dict:
    """{"<bin>|<method>": {metric: mean, "count": n}} over per-image rows, with an "all" bin; infinite PSNRs (perfect
    composites) are left out of the means rather than making them infinite."""
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
    lines = ["| hole area | method | PSNR ↑ | SSIM ↑ | L1 (%) ↓ | hole L1 ↓ | hole detail (1 = photo's) |"
             " checkerboard (1 = photo's) |" + (" LPIPS ↓ |" if with_lpips else "") + " images |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if with_lpips else "")]
    for b in [*BINS, "all"]:
        for m in methods:
            s = summary.get(f"{b}|{m}")
            if s:
                lines.append(f"| {b} | {m} | {s['psnr']:.2f} | {s['ssim']:.4f} | {s['l1_percent']:.2f} | "
                             f"{s['hole_l1']:.4f} | {s['hole_detail']:.2f} | {s.get('checkerboard', float('nan')):.2f} |"
                             + (f" {s['lpips']:.4f} |" if with_lpips else "") + f" {s['count']} |")
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
    lost = losses_to_baselines(summary, "rfr-net", baselines, BINS[1:NVIDIA_BINS])
    names = " and ".join(baselines)
    if not lost:
        return f"\nrfr-net beats {names} on PSNR, SSIM and L1 in every bin from 10 % to 60 %.\n"
    return f"\nrfr-net does **not** beat {names} everywhere from 10 % to 60 %:\n" + "".join(f"- {x}\n" for x in lost)


# The margins reported with their paired bootstrap intervals, each signed so that positive means rfr-net is better.
MARGIN_METRICS = {"psnr": 1, "ssim": 1, "l1_percent": -1, "lpips": -1}


def paired_margins(rows: list[dict], method: str, baselines: list[str], bins: list[str], seed: int = 0) -> dict:
    """{"<bin>|<baseline>|<metric>": {"mean", "low", "high", "pairs"}}: `method`'s margin over each baseline, pairing
    their rows of the same image and mask (positive = `method` better), with the bootstrap 95 % interval of the mean
    (scipy.stats.bootstrap, BCa, 10,000 resamples, seeded). Pairs where either PSNR is infinite (a perfect
    composite) are left out of that metric, as `summarise` leaves them out of its means."""
    from scipy.stats import bootstrap

    by_pair = defaultdict(dict)  # (bin, image, mask) -> {method: row}
    for row in rows:
        by_pair[(row["bin"], row["image"], row["mask"])][row["method"]] = row
    by_bin = defaultdict(list)
    for (pair_bin, _, _), pair in by_pair.items():
        by_bin[pair_bin].append(pair)
    margins = {}
    for b in bins:
        for baseline in baselines:
            for metric, sign in MARGIN_METRICS.items():
                values = [(pair[method].get(metric, np.nan), pair[baseline].get(metric, np.nan))
                          for pair in by_bin[b] if method in pair and baseline in pair]
                differences = [sign * (ours - theirs) for ours, theirs in values
                               if np.isfinite(ours) and np.isfinite(theirs)]
                if len(differences) < 2:
                    continue
                differences = np.asarray(differences)
                if np.ptp(differences) == 0:  # all equal: no spread to resample
                    low = high = float(differences[0])
                else:
                    interval = bootstrap((differences,), np.mean, n_resamples=10_000, confidence_level=0.95,
                                         method="BCa", rng=np.random.default_rng(seed)).confidence_interval
                    low, high = float(interval.low), float(interval.high)
                margins[f"{b}|{baseline}|{metric}"] = {"mean": float(differences.mean()), "low": low, "high": high,
                                                       "pairs": len(differences)}
    return margins


def margins_table(margins: dict, method: str, baselines: list[str], bins: list[str]) -> str:
    """The margins as Markdown: one row per bin and baseline, "mean [low, high]" per metric, and a closing line that
    names every margin whose interval is not wholly above zero."""
    if not margins:
        return ""
    metrics = [m for m in MARGIN_METRICS if any(key.endswith(f"|{m}") for key in margins)]
    names = {"psnr": "PSNR (dB)", "ssim": "SSIM", "l1_percent": "L1 (points)", "lpips": "LPIPS"}
    lines = [f"\n{method}'s margin over each baseline, paired by photo and mask, with its bootstrap 95 % interval "
             "(positive = better):\n", "| hole area | over | " + " | ".join(names[m] for m in metrics) + " | pairs |",
             "|---|---|" + "---|" * (len(metrics) + 1)]
    digits = {"psnr": 2, "ssim": 4, "l1_percent": 2, "lpips": 4}
    not_above = []
    for b in bins:
        for baseline in baselines:
            cells, pairs = [], 0
            for m in metrics:
                margin = margins.get(f"{b}|{baseline}|{m}")
                if margin is None:
                    cells.append("")
                    continue
                d = digits[m]
                cells.append(f"{margin['mean']:+.{d}f} [{margin['low']:+.{d}f}, {margin['high']:+.{d}f}]")
                pairs = max(pairs, margin["pairs"])
                if margin["low"] <= 0:
                    not_above.append(f"{b} {m} over {baseline}")
            if pairs:
                lines.append(f"| {b} | {baseline} | " + " | ".join(cells) + f" | {pairs} |")
    closing = ("every interval is above zero" if not not_above
               else "intervals not wholly above zero: " + ", ".join(not_above))
    return "\n".join(lines) + f"\n\n{closing}.\n"


def save_grid(path: Path, rows: list[list[np.ndarray]]) -> None:
    """A PNG (or a JPEG, for a .jpg path: large photos) of equally sized (H, W, 3) uint8 images, one list per row,
    written atomically."""
    grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    with atomic_file(path) as tmp:
        PIL.Image.fromarray(grid).save(tmp, format="JPEG" if jpeg else "PNG", **({"quality": 90} if jpeg else {}))
