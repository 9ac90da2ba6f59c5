#!/usr/bin/env python
"""Export RFR-Net to ONNX, for onnxruntime on servers, phones, browsers (onnxruntime-web) and C++ applications.

    python scripts/export_onnx.py --model faces --output rfr-faces.onnx [--opset 18] [--fp16]
    python scripts/export_onnx.py --model DIR_OR_REPO_ID --output model.onnx

The graph is the network of the pipeline (rfr_pipeline/onnx_model.py describes it): inputs `image` (B, 3, H, W)
float32 in [0, 1] and `known_mask` (B, 1, H, W), 1 = known; output `output` (B, 3, H, W), the raw prediction; B, H
and W dynamic (H and W multiples of 16). The file is checked by onnx.checker, then run once on onnxruntime beside
PyTorch on a random 256² input (the largest difference is printed; --no-verify skips it). Run it with
`RFRInpaintPipeline.from_onnx(FILE)`, or any onnxruntime. Needs the `[onnx]` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rfr_pipeline.jobs import UsageError, load_pipeline
from rfr_pipeline.onnx_model import DEFAULT_OPSET, ONNXRFRNet, export_onnx


def largest_difference(pipe, path: Path, size: int = 256) -> float:
    """max |onnxruntime − PyTorch| of the raw prediction on one random photo and stroke-like mask."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    known = (torch.rand(1, 1, size // 8, size // 8, generator=generator) > 0.3).float()
    known = torch.nn.functional.interpolate(known, size=(size, size), mode="nearest")
    with torch.no_grad():
        expected = pipe.rfrnet.float()(image, known)
    return (ONNXRFRNet(path)(image, known) - expected).abs().max().item()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="pipeline folder, Hub repo id, or an embedded model (faces)")
    parser.add_argument("--output", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic, float32 inputs/output")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    args = parser.parse_args(argv)
    if args.output.suffix != ".onnx":
        parser.error(f"--output {args.output}: expected a file name ending in .onnx")
    if args.output.exists() and not args.overwrite:
        parser.error(f"--output {args.output} exists; pass --overwrite to replace it")
    if not args.output.parent.is_dir():
        parser.error(f"--output {args.output}: the folder {args.output.parent} does not exist")
    try:
        pipe = load_pipeline(args.model)
    except UsageError as err:
        parser.exit(2, f"error: {err}\n")
    export_onnx(pipe, args.output, opset=args.opset, fp16=args.fp16)
    size_mb = args.output.stat().st_size / 1e6
    print(f"wrote {args.output} ({size_mb:.1f} MB, opset {args.opset}{', float16' if args.fp16 else ''})")
    if not args.no_verify:
        print(f"onnxruntime vs PyTorch on a random 256² input: largest difference {largest_difference(pipe, args.output):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
