"""Batch inpainting across processes: `accelerate launch -m rfr_pipeline.cli` on 2 CPU processes, for real."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from rfr_pipeline import inpaint_folder

ACCELERATE = os.path.join(os.path.dirname(sys.executable), "accelerate")


@pytest.fixture
def make_folders(photo, box_mask):
    """make_folders(root, count): root/images and root/masks with `count` photos of two shapes and their masks."""

    def make(root, count):
        images, masks = root / "images", root / "masks"
        images.mkdir()
        masks.mkdir()
        for n in range(count):
            size = (96, 128) if n % 3 else (64, 80)  # two shapes: batches group photos of one shape
            photo(*size, seed=n).save(images / f"p{n:02d}.png")
            box_mask(*size, boxes=((10 + n % 5, 12, 40, 50),)).save(masks / f"p{n:02d}.png")
        return images, masks

    return make


def launch(images, masks, output, model, *extra, processes=2, wait=True):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
               "-m", "rfr_pipeline.cli", "--image", str(images), "--mask", str(masks), "--output", str(output),
               "--model", str(model), *extra]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # gone meanwhile
        return ""


def records(output):
    return [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]


def test_two_processes_share_the_folder_a_killed_one_loses_nothing_and_a_relaunch_finishes_rewriting_nothing(
        make_folders, photo, tiny_pipeline_dir, tmp_path):
    # (One job, launched twice: every launch starts three processes that import torch, so the checks share them.)
    images, masks = make_folders(tmp_path, 40)
    output = tmp_path / "out"
    job = launch(images, masks, output, tiny_pipeline_dir, "--batch-size", "2", wait=False)
    try:
        deadline = time.time() + 300
        while len(list(output.glob("*.png"))) < 4:
            assert job.poll() is None and time.time() < deadline, "the job ended before it could be killed"
            time.sleep(0.05)
        workers = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if pid != job.pid
                   and "rfr_pipeline.cli" in command_line(pid) and "launch" not in command_line(pid)]
        assert workers, "no worker process found"
        os.kill(workers[-1], signal.SIGKILL)  # one process, mid-job
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    finished = sorted(output.glob("*.png"))
    assert len(finished) < 40, "the job finished before the kill: nothing was tested"
    # Whatever carries a result's name is whole. A process killed mid-write can leave only its hidden `.tmp`
    # temporary, which no image glob matches (pathlib's `*.png` matches hidden files too).
    for path in finished:
        PIL.Image.open(path).load()
    assert all(p.name.startswith(".") and p.suffix == ".tmp" for p in output.iterdir()
               if p.suffix != ".png" and p.name != "manifest.jsonl"), sorted(p.name for p in output.iterdir())
    first = len(records(output))

    # Relaunched with one unreadable photo added: the rest is finished by both processes, the results already there
    # are not rewritten, and the exit status says that a photo failed (the processes end through
    # `rfr_pipeline.distributed.end_processes`, which must pass the status on).
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in finished}
    (images / "zz.png").write_bytes(b"not a png")
    photo(96, 128).save(masks / "zz.png")
    code, log = launch(images, masks, output, tiny_pipeline_dir, "--batch-size", "2")
    assert code == 1 and "zz.png" in log and "terminate called" not in log, log[-4000:]
    assert log.count(f"{40 - len(before)} of {41 - len(before)} images inpainted") == 1, log[-4000:]  # main only
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in output.glob("*.png") if p.name in before} == before
    assert sorted(p.name for p in output.glob("*.png")) == sorted(p.name for p in images.iterdir() if p.name != "zz.png")
    second = records(output)[first:]
    assert Counter(r["status"] for r in second) == {"skipped": len(before), "done": 40 - len(before), "failed": 1}
    assert {r["process"] for r in second if r["status"] == "done"} == {0, 1}  # both processes at work
    assert all(r["seconds"] > 0 for r in second if r["status"] == "done")
    done = Counter(os.path.basename(r["image"]) for r in records(output) if r["status"] == "done")
    # Each exactly once over both launches; except that the killed process may have renamed a batch's results into
    # place and died before its manifest lines (results first, then the record: never a record without its file),
    # so those few are on disk from the first launch and "skipped" by the second.
    unrecorded = {p.name for p in images.iterdir()} - {"zz.png"} - set(done)
    assert unrecorded <= {p.name for p in finished} and len(unrecorded) <= 2, unrecorded  # (--batch-size 2)
    assert set(done.values()) == {1}

    # The same photos in one process, one at a time: the same pixels, within float rounding.
    (images / "zz.png").unlink()
    totals = inpaint_folder(images, masks, tmp_path / "single", str(tiny_pipeline_dir), progress=False)
    assert totals == {"done": 40, "failed": 0, "skipped": 0}
    for path in sorted(images.iterdir()):
        ours = np.asarray(PIL.Image.open(output / path.name)).astype(int)
        single = np.asarray(PIL.Image.open(tmp_path / "single" / path.name)).astype(int)
        assert np.abs(ours - single).max() <= 1, path.name


def test_processes_option_checks_first_then_launches_and_reports_in_a_few_lines(make_folders, photo,
                                                                                tiny_pipeline_dir, tmp_path):
    # `rfr-inpaint --processes 2`: a mistake is one line and exit status 2 before anything starts; a photo that
    # fails makes the status 1, with its one line and none of Accelerate's launcher report.
    script = os.path.join(os.path.dirname(sys.executable), "rfr-inpaint")
    images, masks = make_folders(tmp_path, 6)
    (images / "zz.png").write_bytes(b"not a png")
    photo(96, 128).save(masks / "zz.png")
    common = [script, "--image", str(images), "--mask", str(masks), "--model", str(tiny_pipeline_dir),
              "--proc=2"]  # (argparse's abbreviation: the launched copies must not get it)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    refused = subprocess.run([*common, "--output", str(images)], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "is the --image folder" in refused.stderr
    output = tmp_path / "out"
    done = subprocess.run([*common, "--output", str(output)], capture_output=True, text=True, env=env, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 1, log[-3000:]
    assert "zz.png" in log and "6 of 7 images inpainted" in log and "by 2 processes" in log, log[-3000:]
    assert "ChildFailedError" not in log and "Traceback" not in log, log[-3000:]
    assert {r["process"] for r in records(output) if r["status"] == "done"} == {0, 1}
