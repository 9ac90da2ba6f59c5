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
import sys
import traceback
from pathlib import Path

from .jobs import (
    DTYPES,
    Job,
    UsageError,
    check_outputs,
    describe_failure,
    load_pipeline,
    open_pair,
    plan_jobs,
    resolve_model,
    save_result,
)

STRATEGIES = ("auto", "original", "resize", "crop")  # as RFRInpaintPipeline's (a test checks)
LAUNCHED_BY_CLI = "RFR_LAUNCHED_BY_CLI"  # set for the processes `--processes` starts


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
    # The launched copies get this command without --processes (as typed: argparse also takes "--proc 2", "--proc=2").
    at = next(n for n, a in enumerate(own) if len(a.split("=")[0]) > 2 and "--processes".startswith(a.split("=")[0]))
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
