#!/usr/bin/env python
"""Our RFRNet against the real official code, side by side in one process: the forward pass (and optionally a
training step) on the same weights and input, timed interleaved.

    python -m benchmarks.benchmark_official_code --official-code PATH/TO/RFR-Inpainting [--sizes 256] [--batch-sizes 1]
        [--modes forward train] [--threads 2] [--repeats 5] [--also-without-form FORM]
        [--output benchmarks/results/official_code_cpu.json]

PATH is a checkout of jingyuanli001/RFR-Inpainting (never part of this repository). Its modules are imported as they
are, with two stand-ins for a CPU run: `torchvision` (imported for the VGG16 of its loss, which the generator does not
use) is stubbed, and the attention's one `.cuda()` call (on kernels it never uses) returns the tensor unchanged.
The official generator gets seeded random weights; ours loads the same state dict (rfr_pipeline.convert). The
largest output difference is reported beside the times: a fast wrong model cannot win. --also-without-form times
our forward a second way, without one of the layers' CPU forms (e.g. fft), to measure what that form brings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks._harness import machine_info, timed_interleaved, write_report


def import_official_generator(checkout: Path):
    """The official `RFRNet` class, imported from a checkout with torchvision stubbed."""
    if not (checkout / "modules" / "RFRNet.py").is_file():
        raise SystemExit(f"--official-code {checkout}: no modules/RFRNet.py (expected a checkout of "
                         "jingyuanli001/RFR-Inpainting)")
    stub = types.ModuleType("torchvision")
    stub.models = types.SimpleNamespace()  # for VGG16FeatureExtractor only, never built here
    saved = sys.modules.get("torchvision")
    sys.modules["torchvision"] = stub  # only while the official module imports: other libraries probe for it
    sys.path.insert(0, str(checkout))  # the official code imports `modules.*` from its own root
    try:
        from modules.RFRNet import RFRNet
    finally:
        sys.path.remove(str(checkout))
        if saved is None:
            del sys.modules["torchvision"]
        else:
            sys.modules["torchvision"] = saved
    return RFRNet


@contextmanager
def cuda_calls_stay_on_the_cpu():
    """The official attention calls `.cuda()` once on a kernel it never uses: make that a no-op."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def inputs(size: int, batch: int):
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(batch, 3, size, size, generator=generator)
    known = torch.ones(batch, 1, size, size)
    side = int(size * 0.45)  # ~20 % hole plus scattered pixels, like an irregular mask
    known[:, :, size // 4 : size // 4 + side, size // 3 : size // 3 + side] = 0
    known[torch.rand(known.shape, generator=generator) < 0.03] = 0
    return image, known


def step_functions(official, ours, image, known, mode: str):
    """(official step, our step) for `mode`: a no-grad eval forward, or forward + L1 loss + backward + Adam."""
    known3 = known.repeat(1, 3, 1, 1)
    if mode == "forward":
        official.eval()
        ours.eval()

        def run_official():
            with torch.no_grad(), cuda_calls_stay_on_the_cpu():
                return official(image * known3, known3)[0]

        def run_ours():
            with torch.no_grad():
                return ours(image, known)

        return run_official, run_ours
    official.train()
    ours.train()
    optimisers = {id(m): torch.optim.Adam(m.parameters(), lr=2e-4) for m in (official, ours)}

    def training_step(model, forward):
        output = forward()
        loss = ((output - image).abs() * (1 + 5 * (1 - known))).mean()  # the loss's cost is the same for both
        optimisers[id(model)].zero_grad(set_to_none=True)
        loss.backward()
        optimisers[id(model)].step()
        return output

    def run_official():
        with cuda_calls_stay_on_the_cpu():
            return training_step(official, lambda: official(image * known3, known3)[0])

    return run_official, lambda: training_step(ours, lambda: ours(image, known))


def layers_with_forms():
    from rfr_pipeline.modeling_rfr import PartialConv2d, UpConv

    return (UpConv, PartialConv2d)


def every_form() -> list[str]:
    """The forms our layers choose among on the CPU (rfr_pipeline.cpu_forms.FastestFormOnCPU)."""
    return list(dict.fromkeys(form for layer in layers_with_forms() for form in layer.FORMS))


def choosing_without(run, form: str):
    """`run` with our layers choosing among every form but `form`, from a form cache of its own: the effect of one
    form, timed side by side with the full choice (inference only; training uses the plain form)."""
    from rfr_pipeline import cpu_forms

    reduced = {layer: tuple(f for f in layer.FORMS if f != form) for layer in layers_with_forms()}
    cache = {}

    def run_without():
        saved = {layer: layer.FORMS for layer in reduced}, cpu_forms._fastest_forms
        cpu_forms._fastest_forms = cache
        for layer, forms in reduced.items():
            layer.FORMS = forms
        try:
            return run()
        finally:
            for layer, forms in saved[0].items():
                layer.FORMS = forms
            cpu_forms._fastest_forms = saved[1]

    return run_without


def ratio_summary(times: dict, name: str) -> dict:
    # Each round's own ratio too: its quartiles show how far the shared machine moves the headline ratio.
    round_ratios = [ours / official for ours, official in zip(times[name], times["official"])]
    quartiles = statistics.quantiles(round_ratios, n=4) if len(round_ratios) > 1 else round_ratios * 3
    return {"over_official": statistics.median(times[name]) / statistics.median(times["official"]),
            "round_ratio_quartiles": [quartiles[0], quartiles[2]]}


def measure(official_class, mode: str, size: int, batch: int, repeats: int, without_form: str | None = None) -> dict:
    from rfr_pipeline import load_official_checkpoint

    torch.manual_seed(0)
    official = official_class()
    ours = load_official_checkpoint(official.state_dict())
    image, known = inputs(size, batch)
    run_official, run_ours = step_functions(official, ours, image, known, mode)
    functions = {"official": run_official, "ours": run_ours}
    if without_form and mode == "forward":
        functions[f"ours without {without_form}"] = choosing_without(run_ours, without_form)
    expected = run_official()  # also warm-ups, and the outputs compared
    difference = max((expected - run().detach()).abs().max().item() for name, run in functions.items()
                     if name != "official") if mode == "forward" else None
    if mode != "forward":
        run_ours()
    times, medians = timed_interleaved(functions, repeats)
    ours_summary = ratio_summary(times, "ours")
    result = {"mode": mode, "size": size, "batch": batch, "median_s": medians, "times_s": times,
              "ours_over_official": ours_summary["over_official"],
              "round_ratio_quartiles": ours_summary["round_ratio_quartiles"], "max_abs_difference": difference}
    if len(functions) > 2:
        result["without_form"] = {"form": without_form, **ratio_summary(times, f"ours without {without_form}")}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-code", required=True, type=Path, help="a checkout of jingyuanli001/RFR-Inpainting")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--modes", nargs="+", choices=["forward", "train"], default=["forward"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--also-without-form", metavar="FORM",
                        help="also time our forward with the layers choosing among every form but this one (fft, or a "
                             "transposed convolution's; see rfr_pipeline.cpu_forms.FastestFormOnCPU), side by side")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)

    if args.also_without_form is not None and args.also_without_form not in every_form():
        parser.error(f"--also-without-form: expected one of {', '.join(every_form())}, got {args.also_without_form!r}")
    torch.set_num_threads(args.threads)
    official_class = import_official_generator(args.official_code.resolve())
    report = {"machine": machine_info(args.threads), "official_code": str(args.official_code), "results": []}
    for mode in args.modes:
        for size in args.sizes:
            for batch in args.batch_sizes:
                result = measure(official_class, mode, size, batch, args.repeats, args.also_without_form)
                report["results"].append(result)
                m = result["median_s"]
                difference = result["max_abs_difference"]
                print(f"{mode:>7} {size}² batch {batch}: official {m['official']:.3f} s, ours {m['ours']:.3f} s, "
                      f"ours/official {result['ours_over_official']:.2f} (rounds' quartiles "
                      f"{result['round_ratio_quartiles'][0]:.2f}–{result['round_ratio_quartiles'][1]:.2f})"
                      + (f", max |difference| {difference:.1e}" if difference is not None else ""), flush=True)
                if "without_form" in result:
                    w = result["without_form"]
                    print(f"{'':>7} without {w['form']}: ours/official {w['over_official']:.2f} (rounds' quartiles "
                          f"{w['round_ratio_quartiles'][0]:.2f}–{w['round_ratio_quartiles'][1]:.2f})", flush=True)
    if args.output:
        write_report(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
