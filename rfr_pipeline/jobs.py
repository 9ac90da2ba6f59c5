"""What a command-line job needs, below the commands that run it (`rfr-inpaint` in `cli`, folder jobs across processes
in `batch`, the demo and the ONNX exporter): planning and checking the files before any work, loading the model,
reading and writing images, and the one-line errors a user can act on.

Only the standard library at import time (`rfr-inpaint --help` answers at once); torch and diffusers load with the
model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import IMAGE_FORMATS

SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}
DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16", "bfloat16": "bfloat16",
          "bf16": "bfloat16"}
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class UsageError(Exception):
    """Something the user can fix before any work starts: printed as one line, exit status 2."""


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


# -- files ---------------------------------------------------------------------------------------------------------


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


def describe_failure(err: BaseException) -> str:
    """An error for the command line: the pipeline's advice names its Python argument, this names the option."""
    return f"{type(err).__name__}: {err}".replace("pass resize_mask=True", "pass --resize-mask")
