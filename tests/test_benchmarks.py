"""The benchmark scripts run (quick mode: tiny shapes, one repeat) and report what they claim to; how fast is not
checked here — speed claims come from full benchmark runs, compared against the official computation."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def run(script, tmp_path, *extra, quick=True):
    out = tmp_path / "report.json"
    module = f"benchmarks.{script.removesuffix('.py')}"  # as the README runs them: python -m benchmarks.<name>
    proc = subprocess.run([sys.executable, "-m", module, *(["--quick"] if quick else []), "--output", str(out),
                           *extra], cwd=REPO_ROOT,
                          check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_model_benchmark_quick(tmp_path):
    report, stdout = run("benchmark_model.py", tmp_path, "--modes", "forward")
    assert {"cpu", "threads", "torch"} <= report["machine"].keys()
    cases = {r["impl"]: r for r in report["results"] if "impl" in r}
    assert set(cases) == {"ours", "official"}
    for r in cases.values():
        assert r["median_s"] > 0 and r["gflop"] > 0 and r["peak_rss_mib"] > 0
    assert cases["ours"]["gflop"] < cases["official"]["gflop"]  # the mask convolutions the official code repeats
    # Same weights, same inputs: both implementations produce the same output.
    assert abs(cases["ours"]["output_mean_abs"] - cases["official"]["output_mean_abs"]) < 1e-6
    assert "ours/official time" in stdout


def test_benchmark_entry_point_quick(tmp_path):
    # The command end to end: one case in its own process, the machine record, the report and the table.
    report, stdout = run("benchmark.py", tmp_path, "--threads", "1", "--kinds", "forward", "--resolutions", "32",
                         "--batch-sizes", "2")
    assert {"cpu", "threads", "torch", "cpu_capability", "onednn_max_cpu_isa",
            "mkl_enable_instructions"} <= report["machine"].keys()
    assert report["machine"]["threads"] == 1
    assert report["device"] == "cpu" and report["model"] == "tiny random RFRNet"
    [result] = report["results"]
    assert (result["kind"], result["size"], result["batch"]) == ("forward", [32, 32], 2)
    assert result["median_s"] > 0 and result["peak_rss_mib"] > 0
    assert "forward" in stdout and "peak RSS MiB" in stdout


def test_every_kind_of_benchmark_case_runs():
    # What each kind measures, run here rather than in a subprocess each (which would import torch and diffusers
    # six times; the subprocess route is checked above).
    import torch

    from benchmarks import benchmark

    args = benchmark.parse_args(["--quick", "--device", "cpu", "--threads", "1", "--resolutions", "32",
                                 "--batch-sizes", "2"])
    measured = {(c["kind"], c.get("strategy"), tuple(c["size"]), c.get("batch")) for c in benchmark.cases(args)}
    expected = {(kind, None, (32, 32), 2) for kind in ("forward", "pipeline", "train")}
    expected |= {("strategy", s, (192, 256), None) for s in ("original", "resize", "crop")}
    assert measured == expected
    threads = torch.get_num_threads()  # run_case sets its own; this worker's share is given back after
    try:
        for case in benchmark.cases(args):
            result = benchmark.run_case(case, args)
            assert result["median_s"] > 0 and result["peak_rss_mib"] > 0 and result["parameters"] > 0, case
    finally:
        torch.set_num_threads(threads)


def test_benchmark_of_a_saved_model_measures_that_model_and_reports_cases_it_gives_up(make_model, tmp_path, capsys):
    # benchmark.main in this process (its command line is run above); each case still runs in its own process.
    from benchmarks import benchmark
    from rfr_pipeline import RFRInpaintPipeline

    model = make_model(sample_size=32, trunk_channels=16)  # not the quick mode's own tiny model
    RFRInpaintPipeline(rfrnet=model).save_pretrained(tmp_path / "model")
    common = ["--threads", "1", "--model", str(tmp_path / "model"), "--kinds", "forward", "--resolutions", "32",
              "--batch-sizes", "1", "--output", str(tmp_path / "report.json")]
    assert benchmark.main(common) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model"] == str(tmp_path / "model")
    [result] = report["results"]
    assert result["parameters"] == sum(p.numel() for p in model.parameters()) and result["median_s"] > 0

    benchmark.main([*common, "--case-timeout", "0.01"])
    [result] = json.loads((tmp_path / "report.json").read_text())["results"]
    assert result["skipped"].startswith("did not finish within") and "median_s" not in result
    assert "skipped: did not finish" in capsys.readouterr().out


def test_cuda_checks_refuse_to_run_without_a_gpu(tmp_path, monkeypatch, capsys):
    # The checks themselves need CUDA (their results: benchmarks/results/cuda_h200.json); on a CPU they say so.
    import torch

    from benchmarks import cuda_checks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without a GPU
    monkeypatch.setattr(sys, "argv", ["cuda_checks", "--fixture", "x.pt", "--output", str(tmp_path / "out.json")])
    with pytest.raises(SystemExit, match="no CUDA device"):
        cuda_checks.main()
    assert not (tmp_path / "out.json").exists()


def test_upconv_formulations_quick(tmp_path):
    # Every formulation computes the transposed convolution and both its gradients (so timings compare like for like).
    report, stdout = run("upconv_formulations.py", tmp_path, "--threads", "1")
    rows = report["results"]
    assert {r["formulation"] for r in rows} == {"transposed", "phase-conv", "matmul-fold", "unfold-1x1"}
    assert len({r["layer"] for r in rows}) == 4
    for r in rows:
        assert r["max_relative_difference"] < 1e-5, r
        assert r["forward_ms"] > 0 and r["forward_backward_ms"] > 0
    assert "1024->512 @ 4x4" in stdout


def test_layer_forms_times_every_form_of_every_layer_and_checks_each_against_float64():
    from benchmarks import layer_forms

    measured = layer_forms.measure_here(resolution=32, batch=2, repeats=1, threads=1)
    rows = {row["layer"]: row for row in measured["layers"]}
    assert list(rows) == ["partial 7x7 64->64 @ 2x16x16", "transposed 1024->512 @ 2x2x2", "transposed 768->256 @ 2x4x4",
                          "transposed 384->64 @ 2x8x8", "transposed 64->64 @ 2x16x16"]
    assert set(rows["partial 7x7 64->64 @ 2x16x16"]["median_ms"]) == {"plain", "fft"}
    assert set(rows["transposed 64->64 @ 2x16x16"]["median_ms"]) == {"plain", "channels-last", "phase", "phases-in-one"}
    for row in rows.values():
        assert row["fastest"] in row["median_ms"] and all(ms > 0 for ms in row["median_ms"].values())
        assert all(d < 1e-3 for d in row["max_abs_difference_from_float64"].values()), row


def test_the_official_code_benchmark_imports_a_checkout_and_compares_outputs(tmp_path):
    # A stand-in checkout: modules/RFRNet.py as the official code lays it out (it imports torchvision and returns
    # (output, None)), built on the tests' restatement of the official network. The real checkout is never committed.
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "RFRNet.py").write_text(
        "from torchvision import models  # the official file imports it for its VGG16\n"
        "from tests.official_reference import OfficialRFRNet\n\n\n"
        "class RFRNet(OfficialRFRNet):\n"
        "    def forward(self, in_image, mask):\n"
        "        return super().forward(in_image, mask), None\n")
    report, stdout = run("benchmark_official_code.py", tmp_path, "--official-code", str(tmp_path), "--sizes", "32",
                         "--repeats", "2", "--threads", "1", "--also-without-form", "fft", quick=False)
    [result] = report["results"]
    assert result["max_abs_difference"] < 1e-5 and result["ours_over_official"] > 0
    low, high = result["round_ratio_quartiles"]
    assert 0 < low <= high
    assert set(result["median_s"]) == {"official", "ours", "ours without fft"}
    assert result["without_form"]["form"] == "fft" and result["without_form"]["over_official"] > 0
    assert "ours/official" in stdout and "without fft: ours/official" in stdout


def test_the_official_code_benchmark_refuses_bad_arguments_clearly(tmp_path, capsys):
    from benchmarks import benchmark_official_code

    with pytest.raises(SystemExit, match="expected a checkout of jingyuanli001/RFR-Inpainting"):
        benchmark_official_code.main(["--official-code", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as exit_info:
        benchmark_official_code.main(["--official-code", str(tmp_path), "--also-without-form", "sideways"])
    assert exit_info.value.code == 2
    assert "--also-without-form: expected one of plain, channels-last" in capsys.readouterr().err
