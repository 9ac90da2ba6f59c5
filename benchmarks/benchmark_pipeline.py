"""Cost of the pipeline around the model, and of each large-image strategy.

1. Overhead at 256²: `pipe(PIL image, PIL mask)` against the bare `model(tensor, mask)` it wraps (conversion,
   padding, compositing, PIL output), full-size RFR-Net, batch 1: the median of paired differences of interleaved
   calls.
2. A 2048×1536 photo with a 10 % mask (three separate regions) through each strategy (original, resize, crop):
   median time and peak resident memory, each in its own process. `original` needs the attention over all
   256×192 positions at once (a 49,152² score matrix): expect it to exceed the memory cap, which is the point of
   the other two.

    python -m benchmarks.benchmark_pipeline [--repeats 3] [--output benchmarks/results/pipeline_cpu.json]
    python -m benchmarks.benchmark_pipeline --quick      # tiny model and image: checks the script runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from benchmarks._harness import (
    default_memory_limit_gib,
    machine_info,
    peak_rss_mib,
    photo_and_mask,
    rss_mib,
    run_in_subprocess,
    timed,
    write_report,
)

TINY = {"trunk_channels": 8, "reasoning_channels": [8, 16, 16], "tail_channels": 8, "tail_bottleneck_channels": 2}


def run_case(kind: str, args) -> dict:
    import numpy as np
    import torch

    from rfr_pipeline import RFRInpaintPipeline, RFRNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RFRNet(**(TINY if args.quick else {})).eval()
    pipe = RFRInpaintPipeline(rfrnet=model)
    pipe.set_progress_bar_config(disable=True)
    before = rss_mib()
    if kind == "overhead":
        size = 64 if args.quick else 256
        photo, mask = photo_and_mask(size, size, 0.2)
        image = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255
        known = 1 - torch.from_numpy(np.array(mask) > 0)[None, None].float()
        # Interleave model and pipeline calls, so that drift of the machine's speed cancels in the differences.
        def run_model():
            with torch.no_grad():
                model(image, known)

        run_model(), pipe(photo, mask)  # warm-up
        model_times, pipe_times = [], []
        for _ in range(max(args.repeats, 9)):
            model_times += timed(run_model, 1, warmup=False)
            pipe_times += timed(lambda: pipe(photo, mask), 1, warmup=False)
        m, p = statistics.median(model_times), statistics.median(pipe_times)
        overhead = statistics.median(b - a for a, b in zip(model_times, pipe_times))
        return {"case": "overhead", "size": size, "model_median_s": m, "pipeline_median_s": p,
                "overhead_s": overhead, "overhead_percent": 100 * overhead / m}
    height, width = (192, 256) if args.quick else (1536, 2048)
    photo, mask = photo_and_mask(height, width, 0.10)
    working = 64 if args.quick else args.working_size
    times = timed(lambda: pipe(photo, mask, strategy=kind, working_size=working), args.repeats)
    return {"case": kind, "size": [height, width], "working_size": working, "median_s": statistics.median(times),
            "times_s": times, "peak_rss_mib": peak_rss_mib(), "rss_before_mib": before,
            "hole_fraction": float((np.array(mask) > 0).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--working-size", type=int, default=512)
    parser.add_argument("--strategies", nargs="+", default=["original", "resize", "crop"])
    parser.add_argument("--memory-limit-gib", type=float, default=default_memory_limit_gib())
    parser.add_argument("--case-timeout", type=float, default=600, help="seconds before a case is given up")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_case_output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._case:
        Path(args._case_output).write_text(json.dumps(run_case(args._case, args)))
        return
    if args.quick:
        args.repeats = 1

    common = ["--repeats", str(args.repeats), "--threads", str(args.threads), "--working-size", str(args.working_size)]
    common += ["--quick"] if args.quick else []
    results = []
    for kind in ["overhead", *args.strategies]:
        r = {"case": kind, **run_in_subprocess(__spec__.name, ["--_case", kind, *common], args.memory_limit_gib,
                                               args.case_timeout)}
        results.append(r)
        if "overhead_s" in r:
            print(f"pipeline overhead at {r['size']}²: model {r['model_median_s']:.3f} s, pipeline "
                  f"{r['pipeline_median_s']:.3f} s → +{1000 * r['overhead_s']:.0f} ms ({r['overhead_percent']:.1f} %)",
                  flush=True)
        elif "median_s" in r:
            print(f"{kind:>9} {r['size'][1]}×{r['size'][0]}: {r['median_s']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB",
                  flush=True)
        else:
            print(f"{kind:>9}: {r.get('skipped') or 'failed: ' + r['error']}", flush=True)
    if args.output:
        write_report(args.output, {"machine": machine_info(args.threads), "results": results})
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
