"""What the benchmarks share: one case per subprocess (so peak memory is that case's own), a memory cap that turns
an oversized case into a clean "skipped", machine information, and atomic JSON reports."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_memory_limit_gib() -> float:
    return round(0.85 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_subprocess(module: str, case_args: list[str], memory_limit_gib: float, timeout_s: float | None = None) -> dict:
    """Run `python -m module --_case ... --_case_output FILE` from the repository root and return the JSON it wrote,
    or {"error"|"skipped": reason}."""
    limit = int(memory_limit_gib * 2**30)

    def cap_memory():  # an allocation past the cap fails inside the case instead of waking the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", module, *case_args, "--_case_output", out.name]
        try:
            proc = subprocess.run(command, check=False, capture_output=True, text=True, preexec_fn=cap_memory,
                                  cwd=REPO_ROOT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"skipped": f"did not finish within {timeout_s:g} s"}
        if proc.returncode == 0:
            return json.loads(Path(out.name).read_text())
    last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
    if proc.returncode == -9 or any(word in last[0].lower() for word in ("memory", "alloc")):
        return {"skipped": f"out of memory under the {memory_limit_gib:g} GiB cap ({last[0][:120]})"}
    return {"error": last[0]}


def timed(fn, repeats: int, warmup: bool = True) -> list[float]:
    """Wall times (s) of `repeats` calls of fn, after one untimed warm-up call unless warmup=False."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def timed_interleaved(functions: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Wall times (s) of `repeats` rounds calling every function once, in turn (so a busy spell of the machine
    slows them alike), and their medians; warm them up first."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times, {name: statistics.median(t) for name, t in times.items()}


def machine_info(threads: int) -> dict:
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "threads": threads, "torch": torch.__version__, "python": platform.python_version(),
            # the kernels ATen and oneDNN pick follow the instruction set (and these switches, when set)
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "unset (the CPU's best)"),
            # MKL (matrix products, the FFT form's batched GEMMs) has its own switch
            "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "unset (the CPU's best)")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_report(path: Path, report: dict) -> None:
    from rfr_pipeline.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:  # never leave a half-written report
        tmp.write_text(json.dumps(report, indent=2))


def photo_and_mask(height: int, width: int, hole_fraction: float, seed: int = 0):
    """A textured gradient photo and a mask of three square holes covering about `hole_fraction` of it."""
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    photo = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (height + width)], -1)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    side = int((hole_fraction * height * width / 3) ** 0.5)
    for top, left in ((0.15, 0.1), (0.5, 0.45), (0.2, 0.7)):
        t, l = int(top * height), int(left * width)
        mask[t : t + side, l : l + side] = 255
    return PIL.Image.fromarray(photo), PIL.Image.fromarray(mask)
