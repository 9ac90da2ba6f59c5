"""`rfr-inpaint`: inpaint one image, or a folder of images, from the command line.

    rfr-inpaint --image photo.jpg --mask mask.png --output result.png
    rfr-inpaint --image photos/ --mask masks/ --output results/       # masks matched to images by file name

White mask pixels are repainted. Results are PNG (lossless). Inputs are never overwritten; a file that cannot be read
is reported and skipped, and the exit status is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16"}


def build_parser() -> argparse.ArgumentParser:
    from .pipeline_rfr_inpaint import STRATEGIES

    parser = argparse.ArgumentParser(prog="rfr-inpaint", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, type=Path, help="an image file, or a folder of images")
    parser.add_argument("--mask", required=True, type=Path,
                        help="a mask file (white = repaint), or a folder of masks named like the images")
    parser.add_argument("--output", required=True, type=Path,
                        help="output file (single image) or folder (folder mode); results are PNG")
    parser.add_argument("--model", help="pipeline folder or Hugging Face repo id (default: the embedded model)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="how large images reach the model (default: the model's own default, usually auto)")
    parser.add_argument("--working-size", type=int, help="longest side processed at once (multiple of 16)")
    parser.add_argument("--mask-dilation", type=int, default=0, help="grow the hole by this many pixels")
    parser.add_argument("--invert-mask", action="store_true", help="black = repaint")
    return parser


def find_pairs(image_dir: Path, mask_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Images and their masks, matched by file stem (any image extension); and the images without a mask."""
    masks = {}
    for path in sorted(mask_dir.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            masks.setdefault(path.stem, path)
    pairs, missing = [], []
    for path in sorted(image_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in masks:
            pairs.append((path, masks[path.stem]))
        else:
            missing.append(f"{path.name}: no mask named {path.stem}.* in {mask_dir}")
    return pairs, missing


def save_png_atomically(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private (0600); a result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_pipeline(model: str | None, device: str, dtype_name: str):
    import torch

    from . import DEFAULT_MODEL
    from .pipeline_rfr_inpaint import RFRInpaintPipeline

    if model is None:
        if not Path(DEFAULT_MODEL).joinpath("model_index.json").is_file():
            raise SystemExit("error: this installation has no embedded default model; pass --model FOLDER_OR_REPO_ID")
        model = str(DEFAULT_MODEL)
    pipe = RFRInpaintPipeline.from_pretrained(model, dtype=getattr(torch, DTYPES[dtype_name]))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm.auto import tqdm

    folder_mode = args.image.is_dir()
    if folder_mode:
        if not args.mask.is_dir():
            print(f"error: --image is a folder, so --mask must be a folder too ({args.mask} is not)", file=sys.stderr)
            return 2
        pairs, failures = find_pairs(args.image, args.mask)
        if not pairs:
            print(f"error: no image in {args.image} has a mask of the same name in {args.mask}", file=sys.stderr)
            return 2
        jobs = [(img, msk, args.output / f"{img.stem}.png") for img, msk in pairs]
    else:
        for path, what in ((args.image, "--image"), (args.mask, "--mask")):
            if not path.is_file():
                print(f"error: {what} {path} does not exist", file=sys.stderr)
                return 2
        output = args.output if args.output.suffix else args.output / f"{args.image.stem}.png"
        jobs, failures = [(args.image, args.mask, output)], []

    inputs = {p.resolve() for job in jobs for p in job[:2]}
    clashing = [str(out) for _, _, out in jobs if out.resolve() in inputs]
    if clashing:
        print(f"error: refusing to overwrite input files: {', '.join(clashing)}", file=sys.stderr)
        return 2

    pipe = load_pipeline(args.model, args.device, args.dtype)
    import PIL.Image

    failed = 0
    for image_path, mask_path, output_path in tqdm(jobs, desc="inpainting", unit="image", disable=len(jobs) < 2):
        try:
            with PIL.Image.open(image_path) as image, PIL.Image.open(mask_path) as mask:
                image.load()
                mask.load()
                result = pipe(image=image, mask_image=mask, strategy=args.strategy, working_size=args.working_size,
                              mask_dilation=args.mask_dilation, invert_mask=args.invert_mask).images[0]
            save_png_atomically(result, output_path)
        except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for unreadable or corrupt files
            failures.append(f"{image_path.name}: {type(err).__name__}: {err}")
            failed += 1
            tqdm.write(f"skipped {image_path}: {err}", file=sys.stderr)
    print(f"{len(jobs) - failed} of {len(jobs)} images inpainted into {args.output}", file=sys.stderr)
    if failures:
        print("failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
