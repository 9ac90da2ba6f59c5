"""`rfr-inpaint`: inpaint one image, or a folder of images, from the command line.

    rfr-inpaint --image photo.jpg --mask mask.png --output result.png
    rfr-inpaint --image photos/ --mask masks/ --output results/       # masks matched to images by file name
    rfr-inpaint --image photos/ --mask mask.png --output results/     # one mask for every photo
    rfr-inpaint --image photos/ --mask masks/ --output results/ --processes 8        # 8 GPUs (or CPU processes)
    accelerate launch --num_processes 8 -m rfr_pipeline.cli --image photos/ --mask masks/ --output results/

White mask pixels are repainted. A single result takes the format of its extension (.png, .jpg, .webp, .bmp, .tif);
a folder gets PNG files (lossless) named after the photos. Nothing is overwritten: inputs never, earlier results only
with --overwrite (in folder mode they are kept and the rest done, so an interrupted run can simply be started again).
A file that cannot be read is reported and skipped; the exit status is 1 if any image failed, 2 if nothing could
start (bad arguments, a model that does not load). A folder can be shared by several processes (`accelerate launch`,
one per GPU): each takes its own share, and every attempt is recorded in OUTPUT/manifest.jsonl.
"""

from __future__ import annotations

# Only the standard library at import time: `rfr-inpaint --help` and argument errors answer at once, and torch and
# diffusers load only when there is work to do.
import argparse
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import IMAGE_FORMATS

SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}
STRATEGIES = ("auto", "original", "resize", "crop")  # as RFRInpaintPipeline's (a test checks)
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16"}
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


LAUNCHED_BY_CLI = "RFR_LAUNCHED_BY_CLI"  # set for the processes `--processes` starts


class UsageError(Exception):
    """Something the user can fix before any work starts: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rfr-inpaint", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, type=Path, help="an image file, or a folder of images")
    parser.add_argument("--mask", required=True, type=Path,
                        help="a mask file (white = repaint), or a folder of masks named like the images")
    parser.add_argument("--output", required=True, type=Path,
                        help="the result file (its extension picks the format) or a folder (PNG files)")
    parser.add_argument("--model", help="pipeline folder, Hugging Face repo id, or an embedded model by name "
                                        "(scenes, faces; default: scenes)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--strategy", choices=STRATEGIES,
                        help="how large images reach the model (default: the model's own default, usually auto)")
    parser.add_argument("--working-size", type=int, help="longest side processed at once (multiple of 16)")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction,
                        help="also fill the mirror image and average the two (twice the time; default: the "
                             "model's own default)")
    parser.add_argument("--restore-detail", action=argparse.BooleanOptionalAction, default=True,
                        help="where a large photo's window was scaled down for the model, add back the fine detail "
                             "the scaling removed, borrowed from the photo itself (default: on)")
    parser.add_argument("--mask-dilation", type=int, default=0, help="grow the hole by this many pixels")
    parser.add_argument("--invert-mask", action="store_true", help="black = repaint")
    parser.add_argument("--resize-mask", action="store_true",
                        help="resize a mask of another size to its image (nearest) instead of failing")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="photos of one size sent through the network together (folder mode)")
    parser.add_argument("--overwrite", action="store_true", help="replace results that already exist")
    parser.add_argument("--processes", type=int, default=1,
                        help="share a folder between this many processes (one per GPU where there are GPUs, else "
                             "CPU processes); launched through Accelerate once every check has passed")
    parser.add_argument("--debug", action="store_true", help="print full tracebacks")
    return parser


# -- planning: every check that needs no model, before loading one ---------------------------------------------------


@dataclass
class Job:
    image: Path
    mask: Path
    output: Path


def _images_by_stem(folder: Path, what: str) -> dict[str, Path]:
    """Image files of a folder by file stem; two files of one stem (x.jpg, x.png) are an error, not a silent pick.
    Hidden files are not photos: macOS's `._x.jpg` metadata, an interrupted writer's temporary."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_FORMATS and not path.name.startswith("."):
            found.setdefault(path.stem, []).append(path)
    clashes = [paths for paths in found.values() if len(paths) > 1]
    if clashes:
        names = "; ".join(" and ".join(p.name for p in paths) for paths in clashes)
        raise UsageError(f"{what} {folder} has files that differ only in extension ({names}): they would share "
                         "one result (or mask) name; rename or move one of each")
    return {stem: paths[0] for stem, paths in found.items()}


def plan_jobs(image: Path, mask: Path, output: Path) -> tuple[list[Job], list[str]]:
    """The (image, mask, output) triples to run, and the images that cannot be run (no mask), as messages."""
    if not image.exists():
        raise UsageError(f"--image {image} does not exist")
    if not mask.exists():
        raise UsageError(f"--mask {mask} does not exist")
    if image.is_dir():
        if output.is_file():
            raise UsageError(f"--image is a folder, so --output must be a folder too ({output} is a file)")
        if not output.exists() and output.suffix.lower() in IMAGE_FORMATS:
            raise UsageError(f"--image is a folder, so --output must be a folder too ({output} looks like a file "
                             "name); give a folder for the results")
        for what, folder in (("--image", image), ("--mask", mask)):
            if folder.is_dir() and output.resolve() == folder.resolve():
                raise UsageError(f"--output {output} is the {what} folder: results and their manifest would mix "
                                 "with the photos (and a rerun would take them for photos); give another folder")
        images = _images_by_stem(image, "--image folder")
        if mask.is_dir():
            masks = _images_by_stem(mask, "--mask folder")
            jobs = [Job(img, masks[stem], output / f"{stem}.png") for stem, img in images.items() if stem in masks]
            missing = [f"{img.name}: no mask named {stem}.* in {mask}" for stem, img in images.items()
                       if stem not in masks]
        else:
            jobs, missing = [Job(img, mask, output / f"{stem}.png") for stem, img in images.items()], []
        if not jobs:
            raise UsageError(f"no image in {image} has a mask of the same name in {mask}" if images else
                             f"no images ({', '.join(sorted(IMAGE_FORMATS))}) in {image}")
        return jobs, missing
    if mask.is_dir():
        raise UsageError(f"--image is a file, so --mask must be a file too ({mask} is a folder)")
    if output.is_dir() or output.suffix.lower() not in IMAGE_FORMATS:
        _refuse_unwritable_suffix(output)
        output = output / f"{image.stem}.png"  # a folder: existing, or a name without an image extension
    return [Job(image, mask, output)], []


def _refuse_unwritable_suffix(output: Path) -> None:
    import PIL.Image

    if not output.is_dir() and output.suffix.lower() in PIL.Image.registered_extensions():
        raise UsageError(f"--output {output}: cannot write {output.suffix} results; use one of "
                         f"{', '.join(sorted(IMAGE_FORMATS))} (or a folder)")


def check_writable(folder: Path, option: str = "--output") -> None:
    """That results can be written into `folder` (created if need be), checked before any work: named as the user
    gave it, not as an internal temporary file found to fail after the model ran."""
    existing = folder
    while not existing.exists():  # the nearest part of the path that exists decides
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"{option}: cannot create {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write into {existing} (permission denied)")


def check_outputs(jobs: list[Job], overwrite: bool, folder_mode: bool) -> tuple[list[Job], list[Job]]:
    """(jobs to run, jobs whose result exists and is kept). Inputs are never overwritten; an existing result only
    with `overwrite` (folder mode keeps it and goes on; a single result is an error). Every result's folder must be
    writable (`check_writable`)."""
    for folder in sorted({job.output.parent for job in jobs}):
        check_writable(folder)
    inputs = {p.resolve() for job in jobs for p in (job.image, job.mask)}
    clashing = [str(job.output) for job in jobs if job.output.resolve() in inputs]
    if clashing:
        raise UsageError(f"refusing to overwrite input files: {', '.join(clashing)}")
    existing = [job for job in jobs if job.output.exists()]
    if existing and not overwrite:
        if not folder_mode:
            raise UsageError(f"{existing[0].output} already exists; pass --overwrite to replace it")
        return [job for job in jobs if job not in existing], existing
    return jobs, []


# -- the model -----------------------------------------------------------------------------------------------------


def resolve_model(name: str | None) -> str:
    """A pipeline folder or a Hub repo id; a name that can only be a local path is checked here, so a misspelt
    folder is reported as missing rather than tried as a repo id."""
    if name is None:
        from . import DEFAULT_MODEL

        if not Path(DEFAULT_MODEL, "model_index.json").is_file():
            raise UsageError("this installation has no embedded default model; pass --model FOLDER_OR_REPO_ID")
        return DEFAULT_MODEL
    path = Path(name).expanduser()
    from . import EMBEDDED_MODELS

    if name in EMBEDDED_MODELS and not path.exists():  # a folder of that name wins
        return EMBEDDED_MODELS[name]
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"--model {name}: is a file; expected a pipeline folder (with model_index.json) or a "
                             "Hugging Face repo id")
        if not (path / "model_index.json").is_file():
            hint = " (it looks like a bare RFRNet folder: its parent may be the pipeline)" if \
                (path / "config.json").is_file() else ""
            raise UsageError(f"--model {name}: the folder has no model_index.json, so it is not a pipeline "
                             f"folder{hint}")
        return str(path)
    first = Path(name).parts[0] if Path(name).parts else name
    if not REPO_ID.match(name) or name.startswith(("~", ".")) or Path(first).is_dir():
        raise UsageError(f"--model {name}: no such folder")
    return name


def check_device(name: str):
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (no GPU, or a torch built without CUDA); "
                             "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: Apple's MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps", "xpu"):
        raise UsageError(f"--device {name}: unsupported device type {device.type!r}")
    return device


def load_pipeline(model: str | None, device: str = "cpu", dtype_name: str = "float32"):
    """The pipeline, on `device`, without progress bars; any failure is a UsageError naming the model and why."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    from .pipeline_rfr_inpaint import RFRInpaintPipeline

    name = resolve_model(model)
    target = check_device(device)
    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()  # its "will try the local cache" warnings: the error below says it all
    try:
        pipe = RFRInpaintPipeline.from_pretrained(name, dtype=getattr(torch, DTYPES[dtype_name]))
    except Exception as err:  # anything a broken folder or a failed download raises: one line
        if Path(name).exists():
            raise UsageError(f"--model {name}: could not load it: {first_line(err)}") from err
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
            raise UsageError(f"--model {name}: not a local folder, and as a Hugging Face repo id it is not in the "
                             "local Hugging Face cache (HF_HUB_OFFLINE is set: nothing is downloaded)") from err
        raise UsageError(f"--model {name}: not a local folder, and the Hugging Face Hub could not provide a repo of "
                         f"that name: {first_line(err)}") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(target)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- running -------------------------------------------------------------------------------------------------------


def save_result(image, path: Path) -> None:
    """Atomically, in the format of the file's extension (JPEG has no alpha: an RGBA result is flattened)."""
    from .atomic import atomic_file

    fmt = IMAGE_FORMATS.get(path.suffix.lower(), "PNG")
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    with atomic_file(path) as tmp:
        image.save(tmp, format=fmt, **SAVE_OPTIONS.get(fmt, {}))


def open_pair(job: Job):
    """The job's photo and mask, decoded (PIL's OSError, ValueError or SyntaxError if a file is unreadable)."""
    import PIL.Image

    with PIL.Image.open(job.image) as image, PIL.Image.open(job.mask) as mask:
        image.load()
        mask.load()
        return image.copy(), mask.copy()


def launch_processes(args, argv: list[str] | None) -> int:
    """`--processes N`: every check a folder job makes before work (folders, outputs, the model's name), here, so
    that a mistake is one line with exit status 2; then `accelerate launch` runs N copies of this command (which
    share the folder as `inpaint_folder` does). Its exit status: 0, 1 if a photo failed, 130 after Ctrl-C."""
    import socket
    import subprocess

    if os.environ.get("RANK") is not None:
        raise UsageError("--processes is for launching; under accelerate launch, use its --num_processes")
    if args.processes < 1:
        raise UsageError(f"--processes must be 1 or more, got {args.processes}")
    if not args.image.is_dir():
        raise UsageError(f"--processes shares a folder between processes; --image {args.image} is a file")
    jobs, _ = plan_jobs(args.image, args.mask, args.output)
    check_outputs(jobs, args.overwrite, folder_mode=True)
    resolve_model(args.model)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0  # (a folder job takes cuda:<rank> there)
    if gpus and args.processes > gpus:
        raise UsageError(f"--processes {args.processes}: this machine has {gpus} GPU(s), one process each")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    own = list(sys.argv[1:] if argv is None else argv)
    at = own.index("--processes") if "--processes" in own else next(
        n for n, a in enumerate(own) if a.startswith("--processes="))
    del own[at : at + (1 if "=" in own[at] else 2)]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--multi_gpu", "--num_processes",
               str(args.processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(port), "-m", "rfr_pipeline.cli", *own]
    env = {**os.environ, LAUNCHED_BY_CLI: "1"}
    if not gpus:  # CPU processes: Accelerate's switch, and the cores shared between them
        env["ACCELERATE_USE_CPU"] = "1"
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.processes)))
    from .batch import MANIFEST, read_records

    manifest = args.output / MANIFEST
    start = manifest.stat().st_size if manifest.is_file() else 0
    child = subprocess.Popen(command, env=env)
    try:
        code = child.wait()
    except KeyboardInterrupt:  # the processes got it too: their main process says how far they got
        child.wait()
        return 130
    if code != 0:
        return 130 if code == 130 else 1
    return 1 if any(r["status"] == "failed" for r in read_records(manifest, start)[0]) else 0


def describe_failure(err: BaseException) -> str:
    """An error for the command line: the pipeline's advice names its Python argument, this names the option."""
    return f"{type(err).__name__}: {err}".replace("pass resize_mask=True", "pass --resize-mask")


def inpaint_file(pipe, job: Job, args) -> None:
    image, mask = open_pair(job)
    result = pipe(image=image, mask_image=mask, strategy=args.strategy, working_size=args.working_size,
                  flip_average=args.flip_average, restore_detail=args.restore_detail,
                  mask_dilation=args.mask_dilation, invert_mask=args.invert_mask, resize_mask=args.resize_mask).images[0]
    save_result(result, job.output)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while starting up (imports, loading the model): nothing was written
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.mask_dilation < 0:
            raise UsageError(f"--mask-dilation must be 0 or more pixels, got {args.mask_dilation}")
        if args.processes != 1:
            return launch_processes(args, argv)
        if args.image.is_dir():
            from .batch import Interrupted, inpaint_folder

            try:
                totals = inpaint_folder(
                    args.image, args.mask, args.output, args.model, batch_size=args.batch_size,
                    overwrite=args.overwrite, strategy=args.strategy, working_size=args.working_size,
                    flip_average=args.flip_average, restore_detail=args.restore_detail, mask_dilation=args.mask_dilation,
                    invert_mask=args.invert_mask, resize_mask=args.resize_mask, dtype=args.dtype,
                    device=None if args.device == "cpu" else args.device)
            except Interrupted as stopped:
                if stopped.report:
                    print(stopped, file=sys.stderr)
                return 130  # as a shell reports Ctrl-C
            from .distributed import end_processes

            # Under `--processes` the launching command reports failed photos (from the manifest): a worker's exit
            # status 1 would make Accelerate's launcher print a report of "failed" processes.
            failed = totals["failed"] and not os.environ.get(LAUNCHED_BY_CLI)
            return end_processes(1 if failed else 0)  # in a launch, the process ends here
        (job,), _ = plan_jobs(args.image, args.mask, args.output)
        check_outputs([job], args.overwrite, folder_mode=False)
        pipe = load_pipeline(args.model, args.device, args.dtype)
    except UsageError as err:
        if args.debug:
            traceback.print_exc()
        if os.environ.get("RANK", "0") == "0":  # every process of a launch finds the same fault: say it once
            print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        inpaint_file(pipe, job, args)
    except KeyboardInterrupt:
        print(f"interrupted: nothing written to {job.output}", file=sys.stderr)
        return 130
    except (OSError, ValueError, SyntaxError) as err:  # PIL raises these for unreadable or corrupt files
        if args.debug:
            traceback.print_exc()
        print(f"failed: {job.image.name}: {describe_failure(err)}", file=sys.stderr)
        return 1
    print(f"1 of 1 images inpainted into {job.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
