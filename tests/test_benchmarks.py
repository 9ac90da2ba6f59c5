"""The benchmark scripts run (quick mode: tiny shapes, one repeat) and report what they claim to; how fast is not
checked here — speed claims come from full benchmark runs, compared against the official computation."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def run(script, tmp_path, *extra):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / script), "--quick", "--output", str(out),
                           *extra], check=False, capture_output=True, text=True, timeout=600)
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


def test_pipeline_benchmark_quick(tmp_path):
    report, _ = run("benchmark_pipeline.py", tmp_path)
    by_case = {r["case"]: r for r in report["results"]}
    assert set(by_case) == {"overhead", "original", "resize", "crop"}
    assert by_case["overhead"]["pipeline_median_s"] > 0
    for strategy in ("original", "resize", "crop"):
        assert by_case[strategy]["median_s"] > 0 and by_case[strategy]["peak_rss_mib"] > 0
