#!/usr/bin/env python
"""The demo as people use it: time from Run to the result in a real browser against the server's own time, and the
server's memory over many requests.

    python -m benchmarks.benchmark_demo --browser [--repeats 3] [--output benchmarks/results/demo_browser_cpu.json]
    python -m benchmarks.benchmark_demo --soak 300 [--output benchmarks/results/demo_soak_cpu.json]
    python -m benchmarks.benchmark_demo --soak 20 --quick     # the tiny model and small photos: checks it runs

--browser: the demo (default model) in this process, Debian's Chromium through Playwright; a 12-megapixel JPEG is
uploaded, a person-sized area painted, and Run clicked `--repeats` times (a new stroke before each, so the page has
something new to send), after a first Run that warms the server up. Measured per Run: from the click to the result
drawn in the page (the browser's clock), and the server's handler from start to end (decode, mask, pipeline, PNG).

--soak N: N requests through the API (gradio_client), photos of sizes cycling from 0.3 to 6 megapixels, in two
server processes: as shipped (freed memory handed back after each request) and, as the reference, without that. The
server's resident memory after each request is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import REPO_ROOT, machine_info, write_report

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SOAK_MEGAPIXELS = (0.3, 1.2, 3.0, 0.6, 6.0, 2.0, 4.5, 0.9)
TINY = {"sample_size": 64, "trunk_channels": 8, "reasoning_channels": [8, 16, 16], "tail_channels": 8,
        "tail_bottleneck_channels": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(model: str):
    """The demo in this process, its handler's start and end times recorded."""
    sys.path.insert(0, str(REPO_ROOT))
    import gradio_app

    class Timed(gradio_app.Inpainter):
        calls: list[tuple[float, float]] = []

        def __call__(self, *args):
            start = time.time()
            try:
                return super().__call__(*args)
            finally:
                self.calls.append((start, time.time()))

    inpainter = Timed(model)
    demo = gradio_app.build_demo(inpainter)
    port = free_port()
    gradio_app.launch(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/", inpainter


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def browser(args) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from benchmarks.benchmark_large_photo import make_inputs
    from rfr_pipeline import DEFAULT_MODEL

    width, height = (800, 600) if args.quick else (4000, 3000)
    jpeg, _ = make_inputs(width, height, 0.07)
    photo = Path(tempfile.mkdtemp()) / "photo.jpg"
    photo.write_bytes(jpeg)
    demo, url, inpainter = start_demo(args.model or DEFAULT_MODEL)
    runs = []
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_load_state("networkidle")
            page.wait_for_function("window.editor !== undefined", timeout=60_000)
            page.locator("#editor input[type=file]").first.set_input_files(str(photo))
            page.wait_for_function(f"window.editor.width === {width}", timeout=120_000)
            page.wait_for_timeout(1500)
            box = page.locator("#editor canvas").first.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            for n in range(args.repeats + 1):
                for dy in range(-50, 51, 10):  # a block of strokes, a little to the right each Run
                    page.mouse.move(cx + 10 * n, cy + dy)
                    page.mouse.down()
                    page.mouse.move(cx + 10 * n + 60, cy + dy, steps=3)
                    page.mouse.up()
                page.wait_for_timeout(1500)
                page.wait_for_load_state("networkidle")
                before = len(inpainter.calls)
                page.evaluate("document.querySelector('#result img')?.removeAttribute('src')")
                clicked = page.evaluate("performance.timeOrigin + performance.now()") / 1000
                page.locator("#run").click()
                expect(page.locator("#status")).to_contain_text("Done in", timeout=300_000)
                page.wait_for_function("() => { const i = document.querySelector('#result img');"
                                       " return i && i.complete && i.naturalWidth > 0; }", timeout=300_000)
                shown = page.evaluate("performance.timeOrigin + performance.now()") / 1000
                start, end = inpainter.calls[before]
                runs.append({"run_to_result_s": shown - clicked, "server_s": end - start,
                             "click_to_server_start_s": start - clicked, "server_end_to_result_s": shown - end,
                             "status": page.locator("#status").inner_text()})
                print(("warm-up " if n == 0 else f"run {n}   ") + f"Run→result {shown - clicked:5.2f} s, server "
                      f"{end - start:5.2f} s (ratio {(shown - clicked) / (end - start):.2f}); "
                      f"{runs[-1]['status']}", flush=True)
            chromium.close()
    finally:
        demo.close()
    measured = runs[1:]
    median_ratio = statistics.median(r["run_to_result_s"] / r["server_s"] for r in measured)
    print(f"median Run→result / server: {median_ratio:.2f}")
    return {"photo": [width, height], "runs": runs, "median_ratio": median_ratio,
            "median_run_to_result_s": statistics.median(r["run_to_result_s"] for r in measured),
            "median_server_s": statistics.median(r["server_s"] for r in measured)}


def soak_case(args) -> dict:
    """One server: N requests; the resident memory after each."""
    import PIL.Image
    from gradio_client import Client, handle_file

    from rfr_pipeline.masks import object_mask

    from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline, RFRNet

    model = args.model or DEFAULT_MODEL
    if args.quick:
        model = tempfile.mkdtemp()
        RFRInpaintPipeline(rfrnet=RFRNet(**TINY).eval()).save_pretrained(model)
    demo, url, _ = start_demo(model)
    if args._without_trim:
        sys.modules["gradio_app"]._MALLOC_TRIM = None
    folder = Path(tempfile.mkdtemp())
    source = PIL.Image.open(REPO_ROOT / "examples" / "dandelions_photo.jpg").convert("RGB")
    inputs = []
    for n, megapixels in enumerate(SOAK_MEGAPIXELS):
        megapixels = megapixels / 20 if args.quick else megapixels
        width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
        height = int(width * 3 / 4)
        photo, mask = folder / f"photo{n}.jpg", folder / f"mask{n}.png"
        source.resize((width, height)).save(photo, quality=90)
        object_mask(("person", "car", "disk")[n % 3], width, height, 0.07).save(mask)
        inputs.append({"background": handle_file(str(photo)), "layers": [handle_file(str(mask))], "composite": None})
    client = Client(url, verbose=False)
    rss = [rss_mib()]
    try:
        for n in range(args.soak):
            client.predict(inputs[n % len(inputs)], "auto", 4, api_name="/inpaint")
            rss.append(rss_mib())
    finally:
        demo.close()
    return {"rss_mib": rss}


def soak(args) -> dict:
    results = {}
    for label, extra in (("as shipped", []), ("without malloc_trim (reference)", ["--_without_trim"])):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, "-m", "benchmarks.benchmark_demo", "--soak", str(args.soak), "--_soak_case",
                       "--_case_output", out.name, *extra, *(["--quick"] if args.quick else []),
                       *(["--model", args.model] if args.model else [])]
            subprocess.run(command, check=True, cwd=REPO_ROOT)
            rss = json.loads(Path(out.name).read_text())["rss_mib"]
        half = len(rss) // 2
        results[label] = {"rss_mib": rss, "start_mib": rss[0], "after_first_round_mib": rss[len(SOAK_MEGAPIXELS)],
                          "peak_mib": max(rss), "end_mib": rss[-1],
                          "growth_over_second_half_mib": max(rss[half:]) - max(rss[: half + 1])}
        r = results[label]
        print(f"{label:>32}: start {r['start_mib']:.0f} MiB, after one round of sizes {r['after_first_round_mib']:.0f}, "
              f"peak {r['peak_mib']:.0f}, end {r['end_mib']:.0f}, growth over the second half "
              f"{r['growth_over_second_half_mib']:+.0f} MiB", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--soak", type=int, metavar="N")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="default: the embedded default model")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--_soak_case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_without_trim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_case_output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._soak_case:
        Path(args._case_output).write_text(json.dumps(soak_case(args)))
        return
    if not (args.browser or args.soak):
        parser.error("choose --browser and/or --soak N")
    import torch

    report = {"machine": machine_info(torch.get_num_threads()), "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(["python -m benchmarks.benchmark_demo", *sys.argv[1:]])}
    if args.browser:
        report["browser"] = browser(args)
    if args.soak:
        report["soak"] = soak(args)
    if args.output:
        write_report(args.output, report)


if __name__ == "__main__":
    main()
