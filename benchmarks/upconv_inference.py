#!/usr/bin/env python
"""Which form of RFR-Net's transposed convolutions is fastest for inference, per layer and per instruction set?

For every transposed convolution of the published network at --resolution (kernel 4, stride 2, padding 1), batch 1,
no_grad, four forms of the same arithmetic, timed interleaved (median of --repeats after a warm-up):

  * plain:         F.conv_transpose2d on NCHW input;
  * channels-last: the same on a channels-last input (oneDNN's preferred layout on some CPUs);
  * phase:         four 2×2 convolutions, one per output phase;
  * phases-in-one: one 2×2 convolution with the four phases' kernels side by side (4× the output channels, one
                   extra output row and column), then interleaved
(`UpConv.forward_as`, the forms the layer itself chooses from at first use).

Each instruction set runs in its own process: `native` as this CPU is, `avx2` with ATEN_CPU_CAPABILITY=avx2 and
ONEDNN_MAX_CPU_ISA=AVX2, the kernels an AVX2-only CPU gets.

    python -m benchmarks.upconv_inference [--isas native avx2] [--output benchmarks/results/upconv_inference_cpu.json]
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

ISA_ENVIRONMENTS = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def layers(resolution: int) -> list[tuple[int, int, int]]:
    """(in, out, input side) of every transposed convolution of the paper's configuration."""
    return [(1024, 512, resolution // 16), (768, 256, resolution // 8), (384, 64, resolution // 4),
            (64, 64, resolution // 2)]


def measure_here(resolution: int, repeats: int, threads: int) -> dict:
    import torch

    from rfr_pipeline.modeling_rfr import UPCONV_FORMS, UpConv

    torch.set_num_threads(threads)
    results = []
    for in_channels, out_channels, side in layers(resolution):
        torch.manual_seed(0)
        layer = UpConv(in_channels, out_channels).eval()
        x = torch.randn(1, in_channels, side, side)
        forms = {form: functools.partial(layer.forward_as, form, x) for form in UPCONV_FORMS}
        with torch.no_grad():
            reference = forms["plain"]()
            difference = {name: (fn() - reference).abs().max().item() for name, fn in forms.items()}  # warm-up too
            _, medians = timed_interleaved(forms, repeats)
        medians = {name: 1000 * seconds for name, seconds in medians.items()}
        results.append({"layer": f"{in_channels}->{out_channels} @ {side}x{side}", "median_ms": medians,
                        "fastest": min(medians, key=medians.get), "max_abs_difference": difference})
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "layers": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isas", nargs="+", choices=list(ISA_ENVIRONMENTS), default=list(ISA_ENVIRONMENTS))
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--_here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._here:
        print(json.dumps(measure_here(args.resolution, args.repeats, args.threads)))
        return 0
    report = {"machine": machine_info(args.threads), "resolution": args.resolution, "isas": {}}
    for isa in args.isas:
        proc = subprocess.run([sys.executable, "-m", __spec__.name, "--_here", "--resolution", str(args.resolution),
                               "--repeats", str(args.repeats), "--threads", str(args.threads)], cwd=REPO_ROOT,
                              env={**os.environ, **ISA_ENVIRONMENTS[isa]}, capture_output=True, text=True,
                              check=True)
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        report["isas"][isa] = measured
        for layer in measured["layers"]:
            times = ", ".join(f"{name} {ms:.1f}" for name, ms in layer["median_ms"].items())
            print(f"{isa:>6} ({measured['cpu_capability']}) {layer['layer']:>20}: {times} ms → {layer['fastest']}",
                  flush=True)
    if args.output:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
