"""CUDA checks of RFRNet: parity with the official fixture, low-precision error, speed against the official code.

Run on a CUDA machine (it is what produced benchmarks/results/cuda_h200.json):

    python -m benchmarks.cuda_checks --fixture ../shared/fixtures/official_parity_seed0.pt \
        --output benchmarks/results/cuda_NAME.json

1. Parity: the fixture's official weights through `load_official_checkpoint`, in exact fp32 (TF32 off) and with
   TF32 on (PyTorch's default for cuDNN convolutions), batch 1 and 2, against the official code's CPU output; the
   op-for-op restatement of the official code (tests/official_reference.py) on the same GPU for comparison.
2. Precision: the same model cast to bf16 and fp16 against its own fp32 output on the fixture inputs.
3. Forward latency (CUDA events, median of --repeats after 3 warm-ups) in fp32, fp32+TF32, bf16 and fp16.
4. Ours vs the official computation in exact fp32 (benchmark_model.run_case: forward and a training step with the
   paper's loss), time ratios and peak CUDA memory.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch

from benchmarks.benchmark_model import run_case
from rfr_pipeline import load_official_checkpoint
from tests.official_reference import OfficialRFRNet, fixture_state_dict

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def forward_latency(model, resolution: int, batch: int, dtype, repeats: int, device: str) -> float:
    x = torch.rand(batch, 3, resolution, resolution, device=device, dtype=dtype)
    known = torch.ones(batch, 1, resolution, resolution, device=device, dtype=dtype)
    side = int(resolution * 0.45)
    known[:, :, resolution // 4: resolution // 4 + side, resolution // 3: resolution // 3 + side] = 0
    times = []
    with torch.no_grad():
        for i in range(3 + repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x, known)
            end.record()
            torch.cuda.synchronize()
            if i >= 3:
                times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fixture", required=True, help="../shared/fixtures/official_parity_seed0.pt")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--sizes", default="256x1,256x4,512x1,512x4", help="RESOLUTIONxBATCH,...")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; benchmarks/benchmark_model.py measures the CPU")
    device = "cuda"
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}

    def save() -> None:  # after every stage, so a run cut short still leaves what it measured
        args.output.write_text(json.dumps(report, indent=1))

    fixture = torch.load(args.fixture, weights_only=True)
    state = fixture_state_dict(fixture)
    image, known = fixture["image"].to(device), (1 - fixture["hole"].float()).to(device)
    hole, known3, reference = 1 - known, known.repeat(1, 3, 1, 1), fixture["output"].to(device)

    def error(out, ref):
        d = (out.float() - ref).abs()
        return {"max_abs": d.max().item(), "mean_abs": d.mean().item(),
                "hole_mean_abs": (d * hole).sum().item() / (3 * hole.sum().item())}

    outputs = {}
    for tf32 in (False, True):
        set_tf32(tf32)
        model = load_official_checkpoint(state).eval().to(device)
        official = OfficialRFRNet()
        official.load_state_dict(state)
        official = official.eval().to(device)
        with torch.no_grad():
            ours = model(image * known, known3)
            ours_batch2 = model(image.repeat(2, 1, 1, 1), known.repeat(2, 1, 1, 1))
            theirs = official(image * known3, known3)
        tag = "tf32" if tf32 else "fp32"
        outputs[tag] = ours
        report[f"{tag}_ours_vs_fixture"] = error(ours, reference)
        report[f"{tag}_ours_batch2_vs_fixture"] = max(error(o[None], reference)["max_abs"] for o in ours_batch2)
        report[f"{tag}_official_code_vs_fixture"] = error(theirs, reference)
        print(tag, report[f"{tag}_ours_vs_fixture"], "batch 2 max", report[f"{tag}_ours_batch2_vs_fixture"],
              "official code", report[f"{tag}_official_code_vs_fixture"], flush=True)
    set_tf32(False)
    for name in ("bf16", "fp16"):
        low = copy.deepcopy(model).to(DTYPES[name])
        with torch.no_grad():
            out = low((image * known).to(DTYPES[name]), known3.to(DTYPES[name]))
        # against the exact-fp32 output (TF32 off), not PyTorch's default TF32 one
        report[f"{name}_vs_fp32"] = error(out, outputs["fp32"]) | {"finite": bool(torch.isfinite(out).all())}
        print(name, "vs fp32", report[f"{name}_vs_fp32"], flush=True)
    save()

    report["forward_ours_s"] = {}
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
    for resolution, batch in sizes:
        for name, dtype in DTYPES.items():
            for tf32 in ((False, True) if name == "fp32" else (False,)):
                set_tf32(tf32)
                seconds = forward_latency(copy.deepcopy(model).to(dtype), resolution, batch, dtype, args.repeats,
                                          device)
                key = f"{resolution}x{batch} {name}{'+tf32' if tf32 else ''}"
                report["forward_ours_s"][key] = seconds
                print("forward", key, f"{seconds * 1000:.2f} ms", flush=True)
    set_tf32(False)
    save()

    report["ours_vs_official_fp32"] = []
    for resolution, batch in sizes:
        for mode in ("forward", "train"):
            pair = {impl: run_case(impl, mode, resolution, batch, args.repeats, 1, device)
                    for impl in ("ours", "official")}
            report["ours_vs_official_fp32"] += [{k: v for k, v in r.items() if k != "times_s"} for r in pair.values()]
            ratio = pair["ours"]["median_s"] / pair["official"]["median_s"]
            print(f"{mode} {resolution}x{batch}: ours {pair['ours']['median_s'] * 1000:.2f} ms, official "
                  f"{pair['official']['median_s'] * 1000:.2f} ms, ratio {ratio:.3f}, peak MiB ours "
                  f"{pair['ours']['peak_cuda_mib']:.0f} official {pair['official']['peak_cuda_mib']:.0f}", flush=True)
            save()


if __name__ == "__main__":
    main()
