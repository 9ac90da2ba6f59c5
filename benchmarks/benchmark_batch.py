#!/usr/bin/env python
"""Images per second of a folder job (`rfr-inpaint` / `accelerate launch -m rfr_pipeline.cli`), in one run:
1 process × all threads vs N processes × 1 thread each, at batch sizes 1 and 8.

    python -m benchmarks.benchmark_batch [--model DIR_OR_REPO_ID] [--photos 64] [--output benchmarks/results/batch_cpu.json]

Each configuration runs the real command on the same folder of synthetic photos (a fresh output folder each time).
Reported: wall-clock time of the whole command (start-up and model loading included) and the steady rate, the
photos divided by the busiest process's summed inference time from the manifest (start-up excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image

BIN = Path(sys.executable).parent


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> tuple[Path, Path]:
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    height, width = size
    y, x = np.mgrid[0:height, 0:width]
    for n in range(count):
        base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
        photo = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        PIL.Image.fromarray(photo).save(images / f"{n:04d}.png")
        hole = np.zeros((height, width), np.uint8)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        hole[top : top + height // 4, left : left + width // 4] = 255
        PIL.Image.fromarray(hole).save(masks / f"{n:04d}.png")
    return images, masks


def run(images: Path, masks: Path, output: Path, model: str | None, processes: int, threads: int, batch: int) -> dict:
    args = ["--image", str(images), "--mask", str(masks), "--output", str(output), "--batch-size", str(batch)]
    if model:
        args += ["--model", model]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "ACCELERATE_USE_CPU": "1"}
    if processes == 1:
        command = [str(BIN / "rfr-inpaint"), *args]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(port), "-m", "rfr_pipeline.cli", *args]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]
    done = [r for r in records if r["status"] == "done"]
    busiest = max(sum(r["seconds"] for r in done if r["process"] == p) for p in {r["process"] for r in done})
    return {"processes": processes, "threads_each": threads, "batch": batch, "photos": len(done),
            "wall_s": round(wall, 2), "images_per_s_wall": round(len(done) / wall, 3),
            "images_per_s_steady": round(len(done) / busiest, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or repo id (default: the embedded default model)")
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=[384, 512], metavar=("H", "W"))
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="for the multi-process runs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="rfr-batch-bench-"))
    try:
        images, masks = make_photos(work, args.photos, tuple(args.size))
        results = []
        for batch in args.batch_sizes:
            for processes, threads in ((1, args.processes), (args.processes, 1)):
                result = run(images, masks, work / f"out-{processes}-{batch}", args.model, processes, threads,
                             batch)
                results.append(result)
                print(f"{processes} process(es) × {threads} thread(s), batch {batch}: "
                      f"{result['images_per_s_steady']:.2f} images/s steady, {result['images_per_s_wall']:.2f} "
                      f"with start-up ({result['wall_s']:.1f} s for {result['photos']} photos)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "model": args.model or "embedded default model", "photo_size": args.size, "results": results}
    if args.output:
        from rfr_pipeline.atomic import atomic_file

        with atomic_file(args.output) as tmp:
            tmp.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
