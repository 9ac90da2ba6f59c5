#!/usr/bin/env python
"""onnxruntime vs PyTorch on the same network, in one process: the forward pass at 256² and 512², batch 1.

    python -m benchmarks.benchmark_onnx [--models faces paper] [--threads 2] [--output benchmarks/results/onnx_cpu.json]
    python -m benchmarks.benchmark_onnx --device cuda      # CUDA execution provider vs PyTorch CUDA (onnxruntime-gpu)
    python -m benchmarks.benchmark_onnx --quick            # seconds: one small size, checks the script runs

Models: `faces` (the embedded model, slim), `paper` (the paper's configuration, random weights), or a pipeline
folder / Hub repo id. Each is exported once (rfr_pipeline.onnx_model.export_onnx), then the two runtimes are timed
interleaved (PyTorch, onnxruntime, PyTorch, …) on the same input, each with --threads intra-op threads, after one
warm-up call each. Reported: medians and the ratio onnxruntime / PyTorch, and the largest output difference.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks._harness import machine_info, timed_interleaved, write_report


def load_network(name: str):
    from rfr_pipeline import RFRNet
    from rfr_pipeline.jobs import load_pipeline

    if name == "paper":
        torch.manual_seed(0)
        return RFRNet().eval()
    return load_pipeline(name).rfrnet.eval()


def session(path: Path, threads: int, device: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def measure(network, onnx_session, size: int, repeats: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    known = (torch.rand(1, 1, size // 8, size // 8, generator=generator) > 0.3).float()
    known = torch.nn.functional.interpolate(known, size=(size, size), mode="nearest")
    feed = {"image": image.numpy(), "known_mask": known.numpy()}
    network = network.to(device)
    on_device = image.to(device), known.to(device)

    def run_torch():
        with torch.no_grad():
            out = network(*on_device)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    def run_onnx():
        return onnx_session.run(["output"], feed)[0]

    difference = (torch.from_numpy(run_onnx()) - run_torch().cpu()).abs().max().item()  # also the warm-up
    times, medians = timed_interleaved({"pytorch": run_torch, "onnxruntime": run_onnx}, repeats)
    return {"size": size, "batch": 1, "median_s": medians, "times_s": times,
            "onnxruntime_over_pytorch": medians["onnxruntime"] / medians["pytorch"], "max_abs_difference": difference}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["faces", "paper"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="64² only, two repeats")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = [64], 2
    import onnxruntime

    from rfr_pipeline.onnx_model import export_onnx

    torch.set_num_threads(args.threads)
    report = {"machine": {**machine_info(args.threads), "onnxruntime": onnxruntime.__version__},
              "device": args.device, "results": []}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            network = load_network(name)
            path = export_onnx(network, Path(folder) / "model.onnx")
            onnx_session = session(path, args.threads, args.device)
            for size in args.sizes:
                result = {"model": name, "parameters": sum(p.numel() for p in network.parameters()),
                          **measure(network, onnx_session, size, args.repeats, args.device)}
                report["results"].append(result)
                m = result["median_s"]
                print(f"{name:>8} {size}²: PyTorch {m['pytorch']:.3f} s, onnxruntime {m['onnxruntime']:.3f} s "
                      f"(onnxruntime/PyTorch {result['onnxruntime_over_pytorch']:.2f}), "
                      f"max |difference| {result['max_abs_difference']:.1e}", flush=True)
    if args.output:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
