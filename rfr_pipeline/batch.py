"""Inpaint folders of any size with one process or many (`accelerate launch`), resumably, with a manifest.

    accelerate launch --num_processes 8 -m rfr_pipeline.cli --image photos/ --mask masks/ --output out/
    rfr_pipeline.inpaint_folder("photos/", "masks/", "out/", batch_size=8)       # from Python, one process or many

Every process plans the same job list (results already in the output folder are kept), then takes its own share
(`PartialState.split_between_processes`) and works on its own device (`cuda:<local rank>` on GPUs). Results are
written atomically, so a job killed at any moment loses at most the photos in flight, and a relaunch does the rest.
`manifest.jsonl` in the output folder gets one record per photo per attempt, from every process, one whole line at a
time under a file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

from .jobs import Job, UsageError, check_outputs, describe_failure, load_pipeline, open_pair, plan_jobs, save_result

MANIFEST = "manifest.jsonl"


class Interrupted(Exception):
    """A folder job stopped by Ctrl-C: how far it got (every result written so far is whole and kept)."""

    def __init__(self, done: int, total: int, output: Path, report: bool):
        super().__init__(f"interrupted: {done} of {total} images done (in {output}); run the same command again to "
                         "finish")
        self.report = report  # the main process says it; the others end quietly


def append_record(manifest: Path, record: dict) -> None:
    """One JSON line, written whole under an exclusive lock: records of many processes never interleave."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    with open(manifest, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_records(manifest: Path, offset: int = 0) -> tuple[list[dict], int]:
    """The whole records from byte `offset` on, and the offset after them (read under a shared lock, so never a
    line half-written)."""
    if not manifest.is_file():
        return [], offset
    with open(manifest, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        try:
            f.seek(offset)
            data = f.read()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return [json.loads(line) for line in data.splitlines() if line.strip()], offset + len(data)


def inpaint_folder(image, mask, output, model: str | None = None, *, batch_size: int = 1, overwrite: bool = False,
                   strategy: str | None = None, working_size: int | None = None,
                   flip_average: bool | None = None, restore_detail: bool = True, mask_dilation: int = 0,
                   invert_mask: bool = False, resize_mask: bool = False, dtype: str = "float32",
                   device: str | None = None, progress: bool = True) -> dict[str, int]:
    """Inpaint every photo of the folder `image` (masks matched by file name in the folder `mask`, or one mask file
    for all) into the folder `output`; in every process of an `accelerate launch`, or in one. Returns the counts of
    this launch (`done`, `skipped`, `failed`), the same in every process. Raises `UsageError` for anything wrong
    before work starts (the same rules as `rfr-inpaint`)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object, parse_flag_from_env
    from tqdm.auto import tqdm

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size!r}")
    # As Accelerator does: CPU processes (gloo) when asked (`accelerate launch --cpu`) or when there is no GPU.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    image, mask, output = Path(image), Path(mask), Path(output)
    if not image.is_dir():
        raise UsageError(f"--image {image} must be a folder for a batch job")
    jobs, missing = plan_jobs(image, mask, output)
    todo, kept = check_outputs(jobs, overwrite, folder_mode=True)
    manifest = output / MANIFEST
    start = manifest.stat().st_size if manifest.is_file() else 0
    state.wait_for_everyone()  # every process has planned before any result is written
    if state.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        for job in kept:
            append_record(manifest, {"image": str(job.image), "output": str(job.output), "status": "skipped",
                                     "process": state.process_index, "seconds": 0.0})
        for message in missing:
            append_record(manifest, {"image": str(image / message.split(":")[0]), "output": None, "status": "failed",
                                     "process": state.process_index, "seconds": 0.0, "error": message})
    pipe = load_pipeline(model, str(device or state.device), dtype)
    options = {"strategy": strategy, "working_size": working_size, "flip_average": flip_average,
               "restore_detail": restore_detail, "mask_dilation": mask_dilation, "invert_mask": invert_mask,
               "resize_mask": resize_mask}
    state.wait_for_everyone()

    bar = tqdm(total=len(todo), desc="inpainting", unit="image", disable=not (progress and state.is_main_process))
    counts = {"done": 0, "failed": 0}
    seen = start  # the main process's bar counts every process's new records, reading only what it has not read
    started = time.time()
    try:
        with state.split_between_processes(todo) as mine:
            for first in range(0, len(mine), batch_size):
                for record in _run_batch(pipe, mine[first : first + batch_size], options, state.process_index):
                    append_record(manifest, record)
                    counts[record["status"]] += 1
                    if record["status"] == "failed":
                        tqdm.write(f"skipped {record['image']}: {record['error']}", file=sys.stderr)
                if state.is_main_process:  # one bar for the whole job: what every process has recorded so far
                    new, seen = read_records(manifest, seen)
                    bar.update(sum(r["status"] in ("done", "failed") and r["output"] is not None for r in new))
    except KeyboardInterrupt:  # Ctrl-C (every process of a launch gets it): what is written stays
        bar.close()
        # Done is what a relaunch will keep: the results written since this launch started (each renamed into place
        # whole). Counting the manifest's records instead missed a batch renamed into place just before its records.
        done = sum(job.output.is_file() and job.output.stat().st_mtime >= started for job in todo)
        raise Interrupted(done, len(todo), output, state.is_main_process) from None
    state.wait_for_everyone()
    totals = {"done": 0, "failed": len(missing), "skipped": len(kept)}
    for process_counts in gather_object([counts]):
        totals["done"] += process_counts["done"]
        totals["failed"] += process_counts["failed"]
    if state.is_main_process:
        bar.n = totals["done"] + totals["failed"] - len(missing)
        bar.close()
        processes = f" by {state.num_processes} processes" if state.num_processes > 1 else ""
        print(f"{totals['done']} of {len(todo)} images inpainted into {output}{processes} (records: {manifest})",
              file=sys.stderr)
        if kept:
            print(f"kept {len(kept)} existing result(s) (pass --overwrite to redo them)", file=sys.stderr)
        failures = [f"{Path(r['image']).name}: {r['error']}" if r["output"] else r["error"]
                    for r in read_records(manifest, start)[0] if r["status"] == "failed"]
        if failures:
            print("failed:\n  " + "\n  ".join(failures), file=sys.stderr)
    return totals


def _run_batch(pipe, jobs: list[Job], options: dict, process: int) -> list[dict]:
    """Records for one batch of jobs: the readable photos go through the pipeline together; if that fails, one at
    a time, so that one bad photo fails alone."""
    started = time.perf_counter()
    records, ready = [], []
    for job in jobs:
        try:
            ready.append((job, *open_pair(job)))
        except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for unreadable files
            records.append(_record(job, process, 0.0, err))
    if not ready:
        return records
    try:
        results = pipe(image=[r[1] for r in ready], mask_image=[r[2] for r in ready], batch_size=len(ready),
                       **options).images
        seconds = (time.perf_counter() - started) / len(ready)
        for (job, _, _), result in zip(ready, results):
            try:
                save_result(result, job.output)
                records.append(_record(job, process, seconds))
            except OSError as err:
                records.append(_record(job, process, seconds, err))
    except (OSError, ValueError) as err:
        if len(ready) == 1:
            records.append(_record(ready[0][0], process, time.perf_counter() - started, err))
        else:
            for job, _, _ in ready:
                records += _run_batch(pipe, [job], options, process)
    return records


def _record(job: Job, process: int, seconds: float, error: BaseException | None = None) -> dict:
    record = {"image": str(job.image), "output": str(job.output), "status": "failed" if error else "done",
              "process": process, "seconds": round(seconds, 4)}
    if error is not None:
        record["error"] = describe_failure(error)
    return record
