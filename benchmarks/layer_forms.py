#!/usr/bin/env python
"""Which form of RFR-Net's convolutions is fastest for inference, per layer and per instruction set?

For every layer of the published network at --resolution that has CPU forms to choose from (`FastestFormOnCPU` in
rfr_pipeline/cpu_forms.py), batch --batch, no_grad, each form of the same arithmetic, timed interleaved (median of
--repeats after a warm-up):

  * the trunk's 7×7 partial convolutions (64→64 at H/2): plain (oneDNN's direct kernel), fft (overlap-save on 32×32
    tiles, one batched matrix product per frequency);
  * the transposed convolutions (kernel 4, stride 2, padding 1): plain; channels-last (oneDNN's preferred layout on
    some CPUs); phase (four 2×2 convolutions, one per output phase); phases-in-one (one 2×2 convolution with the four
    phases' kernels side by side, one extra output row and column, then interleaved).

Each form's largest difference from the exact result (the plain form in float64) is reported beside its time.
Each instruction set runs in its own process: `native` as this CPU is, `avx2` with MKL_ENABLE_INSTRUCTIONS=AVX2,
ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2, the kernels an AVX2-only CPU gets.

    python -m benchmarks.layer_forms [--isas native avx2] [--resolution 256] [--batch 1]
        [--output benchmarks/results/layer_forms_cpu.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks._harness import REPO_ROOT, machine_info, timed_interleaved, write_report

AVX2 = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ISA_ENVIRONMENTS = {"native": {}, "avx2": AVX2}


def layers(resolution: int) -> list[tuple[str, int, int, int]]:
    """(kind, in, out, input side) of every layer of the paper's configuration with forms to choose from."""
    return [("partial 7x7", 64, 64, resolution // 2),
            ("transposed", 1024, 512, resolution // 16), ("transposed", 768, 256, resolution // 8),
            ("transposed", 384, 64, resolution // 4), ("transposed", 64, 64, resolution // 2)]


def measure_here(resolution: int, batch: int, repeats: int, threads: int) -> dict:
    import torch

    from rfr_pipeline.modeling_rfr import PartialConv2d, UpConv

    torch.set_num_threads(threads)
    results = []
    for kind, in_channels, out_channels, side in layers(resolution):
        torch.manual_seed(0)
        if kind == "transposed":
            layer = UpConv(in_channels, out_channels).eval()
        else:
            layer = PartialConv2d(in_channels, out_channels, 7, padding=3).eval()
        x = torch.randn(batch, in_channels, side, side)
        forms = {form: functools.partial(layer.forward_as, form, x) for form in type(layer).FORMS}
        with torch.no_grad():
            exact = layer.double().forward_as("plain", x.double())
            layer.float()
            difference = {name: (fn().double() - exact).abs().max().item() for name, fn in forms.items()}  # warm-up
            _, medians = timed_interleaved(forms, repeats)
        medians = {name: 1000 * seconds for name, seconds in medians.items()}
        results.append({"layer": f"{kind} {in_channels}->{out_channels} @ {batch}x{side}x{side}",
                        "median_ms": medians, "fastest": min(medians, key=medians.get),
                        "max_abs_difference_from_float64": difference})
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "layers": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isas", nargs="+", choices=list(ISA_ENVIRONMENTS), default=list(ISA_ENVIRONMENTS))
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--_here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._here:
        print(json.dumps(measure_here(args.resolution, args.batch, args.repeats, args.threads)))
        return 0
    report = {"machine": machine_info(args.threads), "resolution": args.resolution, "batch": args.batch, "isas": {}}
    for isa in args.isas:
        proc = subprocess.run([sys.executable, "-m", __spec__.name, "--_here", "--resolution", str(args.resolution),
                               "--batch", str(args.batch), "--repeats", str(args.repeats), "--threads",
                               str(args.threads)], cwd=REPO_ROOT, env={**os.environ, **ISA_ENVIRONMENTS[isa]},
                              capture_output=True, text=True, check=True)
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        report["isas"][isa] = {"environment": ISA_ENVIRONMENTS[isa], **measured}
        for layer in measured["layers"]:
            times = ", ".join(f"{name} {ms:.1f}" for name, ms in layer["median_ms"].items())
            print(f"{isa:>6} ({measured['cpu_capability']}) {layer['layer']:>34}: {times} ms → {layer['fastest']}",
                  flush=True)
    if args.output:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
