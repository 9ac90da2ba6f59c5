#!/usr/bin/env python
"""A phone photo with one object to remove: a 12-megapixel JPEG with a person-shaped hole (7 % of the photo) from
file to file, with the default model, and where the time goes.

    python -m benchmarks.benchmark_large_photo [--repeats 5] [--output benchmarks/results/large_photo_cpu.json]
    python -m benchmarks.benchmark_large_photo --quick      # a small photo and the tiny model: checks the script runs

Stages, each the median of `--repeats` calls after a warm-up call (the first use of each layer shape times the CPU
forms): JPEG decode; the pipeline's own steps (prepare: tensors and mask; run: the network, all windows; composite:
pasting, colour anchoring, detail restoration; to_pil); and the result's encoding, as PNG at the level the CLI and
demo use (1) and at PIL's default (6), and as JPEG. The reference, in the same run on the same photo and hole, is
OpenCV's Telea inpainting (what the evaluation compares against): the report gives our time over its time.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from benchmarks._harness import REPO_ROOT, machine_info, write_report

PHOTO = REPO_ROOT / "examples" / "dandelions_photo.jpg"


def make_inputs(width: int, height: int, fraction: float) -> tuple[bytes, object]:
    """The example photo as a width × height JPEG (quality 92, as phones save) and a person-shaped mask."""
    import PIL.Image

    from rfr_pipeline.masks import object_mask

    photo = PIL.Image.open(PHOTO).convert("RGB").resize((width, height), PIL.Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    return buffer.getvalue(), object_mask("person", width, height, fraction)


class StageTimer:
    """Wall time of each pipeline step, by wrapping the pipeline's own methods on this instance."""

    def __init__(self, pipe, names=("prepare", "run", "composite", "to_pil")):
        self.seconds = {name: 0.0 for name in names}
        for name in names:
            setattr(pipe, name, self._timed(name, getattr(pipe, name)))

    def _timed(self, name, method):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed

    def take(self) -> dict[str, float]:
        taken = dict(self.seconds)
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--hole", type=float, default=0.07, help="fraction of the photo the person covers")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    import numpy as np
    import PIL.Image
    import torch

    from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline, RFRNet
    from rfr_pipeline.evaluation import run_baseline

    torch.set_num_threads(args.threads)
    if args.quick:
        args.size, args.repeats = [400, 300], 1
    jpeg, mask = make_inputs(*args.size, args.hole)
    if args.quick:
        torch.manual_seed(0)
        pipe = RFRInpaintPipeline(rfrnet=RFRNet(trunk_channels=8, reasoning_channels=[8, 16, 16], tail_channels=8,
                                                tail_bottleneck_channels=2).eval())
    else:
        pipe = RFRInpaintPipeline.from_pretrained(DEFAULT_MODEL)
    pipe.set_progress_bar_config(disable=True)
    stages = StageTimer(pipe)
    hole = np.asarray(mask) > 127

    def once() -> dict[str, float]:
        times = {}
        start = time.perf_counter()
        photo = PIL.Image.open(io.BytesIO(jpeg))
        photo.load()
        times["decode JPEG"] = time.perf_counter() - start
        start = time.perf_counter()
        result = pipe(photo, mask).images[0]
        times["pipeline"] = time.perf_counter() - start
        times.update({f"  {name}": seconds for name, seconds in stages.take().items()})
        for label, options in (("encode PNG (level 1)", {"format": "PNG", "compress_level": 1}),
                               ("encode PNG (level 6)", {"format": "PNG"}),
                               ("encode JPEG (q95)", {"format": "JPEG", "quality": 95})):
            start = time.perf_counter()
            result.save(io.BytesIO(), **options)
            times[label] = time.perf_counter() - start
        start = time.perf_counter()
        run_baseline("telea", np.asarray(photo.convert("RGB")), hole)
        times["OpenCV Telea"] = time.perf_counter() - start
        return times

    once()  # warm-up
    runs = [once() for _ in range(args.repeats)]
    median = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    median["file to file (decode + pipeline + PNG level 1)"] = statistics.median(
        run["decode JPEG"] + run["pipeline"] + run["encode PNG (level 1)"] for run in runs)
    width, height = args.size
    print(f"{width}×{height} JPEG, person-shaped hole of {100 * hole.mean():.1f} %, {args.threads} threads, "
          f"median of {args.repeats}:")
    for name, seconds in median.items():
        print(f"  {name:<48} {seconds:6.2f} s")
    ratio = median["pipeline"] / median["OpenCV Telea"]
    print(f"  pipeline / OpenCV Telea: {ratio:.2f}×")
    if args.output:
        write_report(args.output, {
            "machine": machine_info(args.threads), "date": time.strftime("%Y-%m-%d"),
            "model": "tiny random RFRNet" if args.quick else "default (scenes)", "size": [width, height],
            "hole_fraction": float(hole.mean()), "repeats": args.repeats, "median_s": median,
            "pipeline_over_telea": ratio, "runs_s": runs})


if __name__ == "__main__":
    main()
