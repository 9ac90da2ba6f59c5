"""Speed and memory of RFRNet against the official computation, in the same run.

For each resolution × batch size and each implementation (`ours` = rfr_pipeline.RFRNet, `official` = the op-for-op
restatement of the official code in tests/official_reference.py, checked against the official fixtures by the
tests), in a fresh subprocess each (so peak memory is that case's own):
  * forward: eval mode, no_grad, median wall time of `--repeats` runs after one warm-up;
  * train:   forward + the paper's loss (random-weight VGG16, same cost as the real one) + backward + Adam step;
  * achieved GFLOP/s (FLOPs counted by torch.utils.flop_counter, which counts the matrix products of our FFT form of
    the 7×7 convolutions but not its transforms) and peak resident memory.
Both implementations hold the same random weights and inputs; outputs are compared so a fast wrong model cannot win.

    python -m benchmarks.benchmark_model                         # 256² and 512², batch 1 and 4, fp32, CPU
    python -m benchmarks.benchmark_model --quick                 # seconds: tiny shapes, checks the script runs
    python -m benchmarks.benchmark_model --output benchmarks/results/model_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks._harness import (
    default_memory_limit_gib,
    machine_info,
    peak_rss_mib,
    rss_mib,
    run_in_subprocess,
    write_report,
)


def run_case(impl: str, mode: str, resolution: int, batch: int, repeats: int, threads: int, device: str) -> dict:
    """One measurement, meant to run in its own process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from rfr_pipeline import load_official_checkpoint
    from rfr_pipeline.losses import InpaintingLoss
    from rfr_pipeline.vgg import VGG16Features
    from tests.official_reference import OfficialRFRNet, official_generator_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    reference = OfficialRFRNet()
    model = reference if impl == "official" else load_official_checkpoint(reference.state_dict())
    model = model.to(device)
    g = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, resolution, resolution, generator=g).to(device)
    known = torch.ones(batch, 1, resolution, resolution)
    side = int(resolution * 0.45)  # ~20 % hole plus scattered pixels, like an irregular mask
    known[:, :, resolution // 4 : resolution // 4 + side, resolution // 3 : resolution // 3 + side] = 0
    known[torch.rand(known.shape, generator=g) < 0.03] = 0
    known = known.to(device)
    known3 = known.repeat(1, 3, 1, 1)

    def forward():
        if impl == "official":
            return model(image * known3, known3)
        return model(image, known)

    if mode == "forward":
        model.eval()

        def step():
            with torch.no_grad():
                return forward()

    else:
        model.train()
        vgg = VGG16Features().to(device)
        ours_loss = InpaintingLoss(vgg)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)

        def step():
            output = forward()
            if impl == "official":
                loss = official_generator_loss(vgg, image, known3, output)
            else:
                loss = ours_loss(output, image, known)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return output

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rss_before = rss_mib()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up (on the CPU it also times each transposed convolution's forms once: not counted)
    with FlopCounterMode(display=False) as counter:
        first = step()
    sync()
    checksum = float(first.detach().double().abs().mean())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    flops = counter.get_total_flops()
    result = {
        "impl": impl, "mode": mode, "resolution": resolution, "batch": batch, "device": device,
        "median_s": median, "times_s": times, "gflop": flops / 1e9, "gflop_per_s": flops / 1e9 / median,
        "output_mean_abs": checksum,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_before,
    }
    if device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def run_case_in_subprocess(args: argparse.Namespace, impl: str, mode: str, resolution: int, batch: int) -> dict:
    case = ["--_case", impl, mode, str(resolution), str(batch), "--repeats", str(args.repeats),
            "--threads", str(args.threads), "--device", args.device]
    result = run_in_subprocess(__spec__.name, case, args.memory_limit_gib)
    return {"impl": impl, "mode": mode, "resolution": resolution, "batch": batch, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward", "train"])
    parser.add_argument("--impls", nargs="+", choices=["ours", "official"], default=["ours", "official"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-limit-gib", type=float, default=default_memory_limit_gib(),
                        help="address-space cap of each case (a case over it is reported as skipped)")
    parser.add_argument("--quick", action="store_true", help="64² and batch 1, one repeat: checks the script runs")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--_case", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--_case_output", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._case:
        impl, mode, resolution, batch = args._case
        result = run_case(impl, mode, int(resolution), int(batch), args.repeats, args.threads, args.device)
        Path(args._case_output).write_text(json.dumps(result))
        return

    if args.quick:
        args.resolutions, args.batch_sizes, args.repeats = [64], [1], 1
    results = []
    header = f"{'res':>5} {'batch':>5} {'mode':>8} {'impl':>9} {'median s':>9} {'GFLOP':>8} {'GFLOP/s':>8} {'peak MiB':>9}"
    print(header)
    for resolution in args.resolutions:
        for batch in args.batch_sizes:
            for mode in args.modes:
                case = {}
                for impl in args.impls:
                    r = run_case_in_subprocess(args, impl, mode, resolution, batch)
                    results.append(r)
                    case[impl] = r
                    if "error" in r or "skipped" in r:
                        what = f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
                        print(f"{resolution:>5} {batch:>5} {mode:>8} {impl:>9}  {what}", flush=True)
                        continue
                    print(f"{resolution:>5} {batch:>5} {mode:>8} {impl:>9} {r['median_s']:>9.3f} {r['gflop']:>8.1f} "
                          f"{r['gflop_per_s']:>8.1f} {r['peak_rss_mib']:>9.0f}", flush=True)
                if all(i in case and "median_s" in case[i] for i in ("ours", "official")):
                    ratio = case["ours"]["median_s"] / case["official"]["median_s"]
                    same = abs(case["ours"]["output_mean_abs"] - case["official"]["output_mean_abs"])
                    print(f"{'':>30} ours/official time = {ratio:.3f}   (output mean |x| differs by {same:.1e})")
                    results.append({"resolution": resolution, "batch": batch, "mode": mode, "time_ratio": ratio})
    report = {"machine": machine_info(args.threads), "results": results}
    if args.output:
        write_report(args.output, report)
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
