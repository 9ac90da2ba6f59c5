"""How fast can RFR-Net's transposed convolutions (kernel 4, stride 2, padding 1) train on this CPU?

The CPU training step at 256², batch 1 spends about 13 % of its time in one layer: the reasoning decoder's 1024→512
transposed convolution at H/16 (forward 13 ms, backward 44 ms, 6 times a step), which oneDNN runs at about half
the throughput of the network's other convolutions. This measures, for every transposed convolution of the published
network, the same arithmetic written four ways, forward + backward (gradients of input and weight):

  * transposed:  F.conv_transpose2d, what RFRNet trains with;
  * phase-conv:  one 2×2 convolution of the 1-padded input with 4× the output channels (the four output phases),
                 interleaved afterwards; its weight is a permutation of the transposed one (rebuilt every call, as
                 training must);
  * matmul-fold: the columns Wᵀ·X, then F.fold (col2im) — autograd gives unfold and two matmuls back;
  * unfold-1x1:  forward as `transposed`, backward by hand: unfold the output gradient, then both gradients as
                 1×1 convolutions (oneDNN rather than MKL matmuls).

Every formulation's output and gradients are compared with `transposed` (max relative difference) so a wrong one
cannot win. Median of `--repeats` timings after a warm-up, in this process, `--threads` threads.

    python -m benchmarks.upconv_formulations --output benchmarks/results/upconv_cpu.json   # 256², batch 1 and 4
    python -m benchmarks.upconv_formulations --quick                                      # seconds: tiny shapes
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks._harness import machine_info, timed, write_report


def transposed(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.conv_transpose2d(x, w, stride=2, padding=1)


def phase_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # Output row 2r + a reads padded input rows r + a + i (i = 0, 1) through kernel row 3 − a − 2i; after flipping
    # the kernel, row 2i + a. Same for columns, so the four phase kernels are a reshape of the flipped weight.
    b, ci, h, wd = x.shape
    co = w.shape[1]
    phase_weight = w.flip(2, 3).reshape(ci, co, 2, 2, 2, 2).permute(3, 5, 1, 0, 2, 4).reshape(4 * co, ci, 2, 2)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), phase_weight).view(b, 2, 2, co, h + 1, wd + 1)
    rows = [torch.stack([y[:, a, c, :, a : a + h, c : c + wd] for c in range(2)], dim=-1) for a in range(2)]
    return torch.stack(rows, dim=3).reshape(b, co, 2 * h, 2 * wd)


def matmul_fold(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    b, ci, h, wd = x.shape
    co = w.shape[1]
    columns = torch.matmul(w.reshape(ci, co * 16).t(), x.reshape(b, ci, h * wd))  # (B, co·16, h·w)
    return F.fold(columns, (2 * h, 2 * wd), kernel_size=4, stride=2, padding=1)


class _UnfoldBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return F.conv_transpose2d(x, w, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad_y):
        x, w = ctx.saved_tensors
        b, ci, h, wd = x.shape
        k = w.shape[1] * 16
        columns = F.unfold(grad_y, 4, stride=2, padding=1)  # (B, co·16, h·w): the output window of every input
        grad_x = F.conv2d(columns.view(b, k, h, wd), w.reshape(ci, k, 1, 1))
        # grad_w[ci, k] = Σ over samples and positions of x[ci]·columns[k]: positions become the input channels
        columns_t = columns.transpose(0, 1).reshape(k, b * h * wd).t().reshape(1, b * h * wd, k, 1)
        x_t = x.reshape(b, ci, h * wd).transpose(0, 1).reshape(ci, b * h * wd, 1, 1)
        grad_w = F.conv2d(columns_t, x_t).view_as(w)
        return grad_x, grad_w


def unfold_1x1(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return _UnfoldBackward.apply(x, w)


FORMULATIONS = {"transposed": transposed, "phase-conv": phase_conv, "matmul-fold": matmul_fold,
                "unfold-1x1": unfold_1x1}


def upconv_shapes(resolution: int) -> list[tuple[int, int, int]]:
    """(in, out, input side) of every transposed convolution of the published network at `resolution`."""
    return [(1024, 512, resolution // 16), (768, 256, resolution // 8), (384, 64, resolution // 4),
            (64, 64, resolution // 2)]


def median_ms(fn, repeats: int) -> float:
    return statistics.median(timed(fn, repeats)) * 1e3


def measure(cin: int, cout: int, side: int, batch: int, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cin, side, side, generator=g).requires_grad_()
    w = (torch.randn(cin, cout, 4, 4, generator=g) * 0.02).requires_grad_()
    grad_y = torch.randn(batch, cout, 2 * side, 2 * side, generator=g)
    gflop = 2 * batch * side * side * cin * cout * 16 / 1e9  # forward; the backward is twice that
    reference = transposed(x, w)
    reference_grads = torch.autograd.grad(reference, (x, w), grad_y)
    reference = reference.detach()
    rows = []
    for name, fn in FORMULATIONS.items():
        y = fn(x, w)
        grads = torch.autograd.grad(y, (x, w), grad_y)
        y = y.detach()
        difference = max(float((a - b).abs().max() / b.abs().max())
                         for a, b in zip((y, *grads), (reference, *reference_grads)))

        def forward(fn=fn):
            with torch.no_grad():
                fn(x, w)

        def train(fn=fn):
            torch.autograd.grad(fn(x, w), (x, w), grad_y)

        forward_ms, train_ms = median_ms(forward, repeats), median_ms(train, repeats)
        rows.append({"layer": f"{cin}->{cout} @ {side}x{side}", "batch": batch, "formulation": name,
                     "forward_ms": forward_ms, "forward_backward_ms": train_ms,
                     "gflop_per_s_forward": gflop / forward_ms * 1e3,
                     "gflop_per_s_forward_backward": 3 * gflop / train_ms * 1e3,
                     "max_relative_difference": difference})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--quick", action="store_true", help="64², batch 1, two repeats: checks the script runs")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.resolution, args.batch_sizes, args.repeats = 64, [1], 2
    torch.set_num_threads(args.threads)

    results = []
    print(f"{'layer':>22} {'batch':>5} {'formulation':>12} {'fwd ms':>8} {'fwd+bwd ms':>10} {'GFLOP/s':>8} {'max rel diff':>12}")
    for batch in args.batch_sizes:
        for cin, cout, side in upconv_shapes(args.resolution):
            for r in measure(cin, cout, side, batch, args.repeats):
                results.append(r)
                print(f"{r['layer']:>22} {batch:>5} {r['formulation']:>12} {r['forward_ms']:>8.1f} "
                      f"{r['forward_backward_ms']:>10.1f} {r['gflop_per_s_forward_backward']:>8.0f} "
                      f"{r['max_relative_difference']:>12.1e}", flush=True)
    if args.output:
        write_report(args.output, {"machine": machine_info(args.threads), "resolution": args.resolution,
                                   "results": results})


if __name__ == "__main__":
    main()
