#!/usr/bin/env python
"""How fast, and how much memory, for a given model: one command.

    python -m benchmarks.benchmark [--model DIR_OR_REPO_ID] [--device cuda] [--output benchmarks/results/NAME.json]
    python -m benchmarks.benchmark --quick          # tiny model and shapes, one repeat: checks the script runs

Without --model it measures the published architecture (random weights: speed does not depend on their values).
Every case runs in its own process (so peak memory is its own, under a cap that turns "too big" into "skipped"):
  * forward:  the bare network, eval mode, no_grad, at 256², 512², 1024², batch 1 and 8;
  * pipeline: `pipe(images, masks, strategy="original")` on PIL images with a ~20 % mask, same sizes and batches
    (so pipeline − forward is the cost of conversion, padding, compositing and PIL output);
  * strategy: a 2048×1536 photo with a 10 % mask (three regions) through "original", "resize" and "crop";
  * train:    forward + the paper's loss (random-weight VGG16: same cost as the real one) + backward + Adam step.
Reported: median wall time of --repeats runs after a warm-up, and peak memory (resident set on the CPU, allocated
CUDA memory on a GPU). Writes JSON with the machine (CPU model, threads, torch, GPU) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks._harness import (
    default_memory_limit_gib,
    machine_info,
    peak_rss_mib,
    photo_and_mask,
    run_in_subprocess,
    write_report,
)

TINY = {"trunk_channels": 8, "reasoning_channels": [8, 16, 16], "tail_channels": 8, "tail_bottleneck_channels": 2}
LARGE_PHOTO = (1536, 2048)  # height, width
STRATEGIES = ("original", "resize", "crop")


def load_model(spec: str | None, quick: bool):
    from rfr_pipeline import RFRInpaintPipeline, RFRNet

    if spec:
        return RFRInpaintPipeline.from_pretrained(spec).rfrnet
    return RFRNet(**(TINY if quick else {}))


def run_case(case: dict, args) -> dict:
    """One measurement, in its own process."""
    import numpy as np
    import torch

    from rfr_pipeline import RFRInpaintPipeline
    from rfr_pipeline.losses import InpaintingLoss
    from rfr_pipeline.vgg import VGG16Features

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = load_model(args.model, args.quick).to(device)
    pipe = RFRInpaintPipeline(rfrnet=model)
    pipe.set_progress_bar_config(disable=True)
    kind, batch = case["kind"], case.get("batch", 1)
    height, width = case.get("size", LARGE_PHOTO)
    photo, mask = photo_and_mask(height, width, 0.10 if kind == "strategy" else 0.20)
    image = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float().div(255).repeat(batch, 1, 1, 1)
    known = (torch.from_numpy(np.array(mask)) == 0)[None, None].float().repeat(batch, 1, 1, 1)
    image, known = image.to(device), known.to(device)

    if kind == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                model(image, known)
    elif kind == "pipeline":
        model.eval()

        def step():
            pipe([photo] * batch, [mask] * batch, strategy="original", batch_size=batch)
    elif kind == "strategy":
        model.eval()

        def step():
            pipe(photo, mask, strategy=case["strategy"])
    else:  # train
        model.train()
        loss_fn = InpaintingLoss(VGG16Features().to(device))
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)

        def step():
            loss = loss_fn(model(image, known), image, known)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up
    synchronize()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    result = {"median_s": statistics.median(times), "times_s": times, "peak_rss_mib": peak_rss_mib(),
              "parameters": sum(p.numel() for p in model.parameters())}
    if device.type == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def cases(args) -> list[dict]:
    out = []
    for kind in args.kinds:
        if kind == "strategy":
            size = [192, 256] if args.quick else list(LARGE_PHOTO)
            out += [{"kind": "strategy", "strategy": s, "size": size} for s in STRATEGIES]
            continue
        resolutions = args.train_resolutions if kind == "train" else args.resolutions
        out += [{"kind": kind, "size": [r, r], "batch": b} for r in resolutions for b in args.batch_sizes]
    return out


def describe(case: dict) -> str:
    h, w = case["size"]
    what = case.get("strategy") or f"batch {case['batch']}"
    return f"{case['kind']:>8} {f'{w}×{h}':>10} {what:>9}"


def parse_args(argv=None) -> argparse.Namespace:
    """The command's arguments, with the device and thread count resolved and --quick's small shapes applied."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub repo id (default: the published architecture)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--kinds", nargs="+", choices=["forward", "pipeline", "strategy", "train"],
                        default=["forward", "pipeline", "strategy", "train"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--train-resolutions", type=int, nargs="+", default=[256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--memory-limit-gib", type=float, default=default_memory_limit_gib(),
                        help="address-space cap of each CPU case (a case over it is reported as skipped)")
    parser.add_argument("--case-timeout", type=float, default=900, help="seconds before a case is given up")
    parser.add_argument("--quick", action="store_true", help="tiny model, 32²/64², batch 1/2, one repeat")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_case_output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.threads = args.threads or torch.get_num_threads()
    if args.quick:  # small shapes, unless given explicitly
        for name, value in (("resolutions", [32, 64]), ("train_resolutions", [32]), ("batch_sizes", [1, 2]),
                            ("repeats", 1)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._case:
        Path(args._case_output).write_text(json.dumps(run_case(json.loads(args._case), args)))
        return 0
    common = ["--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats)]
    common += (["--model", args.model] if args.model else []) + (["--quick"] if args.quick else [])
    # A GPU's memory is not the process's address space: cap CPU cases only.
    cap = args.memory_limit_gib if args.device == "cpu" else 1e6
    memory = "peak CUDA MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"{'case':>8} {'size':>10} {'':>9} {'median s':>9} {memory:>14}")
    results = []
    for case in cases(args):
        r = {**case, **run_in_subprocess(__spec__.name, ["--_case", json.dumps(case), *common], cap, args.case_timeout)}
        results.append(r)
        if "median_s" in r:
            print(f"{describe(case)} {r['median_s']:>9.3f} {r.get('peak_cuda_mib', r['peak_rss_mib']):>14.0f}",
                  flush=True)
        else:
            what = f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r['error']}"
            print(f"{describe(case)}  {what}", flush=True)
    if args.output:
        model = args.model or ("tiny random RFRNet" if args.quick else "published architecture, random weights")
        write_report(args.output, {"model": model, "device": args.device, "machine": machine_info(args.threads),
                                   "results": results})
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
