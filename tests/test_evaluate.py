"""scripts/evaluate.py: metrics with known answers, NVIDIA mask bins, and an end-to-end run."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from conftest import REPO_ROOT
from test_model import make_model

from rfr_pipeline import RFRInpaintPipeline

sys.path.insert(0, str(REPO_ROOT / "scripts"))
pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
import evaluate


def test_metrics_known_answers():
    truth = np.full((16, 16, 3), 100, np.uint8)
    hole = np.zeros((16, 16), bool)
    hole[:4] = True
    same = evaluate.metrics(truth, truth, hole)
    assert math.isinf(same["psnr"]) and same["ssim"] == pytest.approx(1.0) and same["l1_percent"] == 0
    off = truth.copy()
    off[hole] += 51  # 0.2 off on a quarter of the pixels: MSE = 0.04 / 4 = 0.01 → PSNR 20 dB
    m = evaluate.metrics(off, truth, hole)
    assert m["psnr"] == pytest.approx(20.0, abs=1e-6)
    assert m["l1_percent"] == pytest.approx(100 * 0.2 / 4) and m["hole_l1"] == pytest.approx(0.2)
    # an infinite PSNR (a perfect composite) is left out of the mean rather than making it infinite
    rows = [{"bin": "1-10%", "method": "x", **same}, {"bin": "1-10%", "method": "x", **m}]
    assert evaluate.summarise(rows)["1-10%|x"]["psnr"] == pytest.approx(20.0)


def test_nvidia_bins_from_file_numbers():
    assert [evaluate.nvidia_bin(Path(f"{n:05d}.png")) for n in (0, 1999, 2000, 5999, 11999)] == [0, 0, 1, 2, 5]
    assert evaluate.nvidia_bin(Path("mask_a.png")) is None
    assert evaluate.measured_bin(np.ones((10, 10)) * (np.arange(10) < 3)) == 2  # 30 % → the 20-30 % bin


def test_end_to_end_with_a_tiny_model_and_telea(tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for n in range(3):
        PIL.Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(images / f"i{n}.png")
    (images / "broken.png").write_bytes(b"not a png")
    for number, fraction in ((10, 0.05), (2010, 0.15), (10010, 0.55)):  # bins 0, 1 and 5
        mask = np.zeros((64, 64), np.uint8)
        mask[: int(64 * fraction)] = 255
        PIL.Image.fromarray(mask).save(masks / f"{number:05d}.png")
    model_dir = tmp_path / "model"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=32)).save_pretrained(model_dir)
    code = evaluate.main(["--model", str(model_dir), "--images", str(images), "--masks", str(masks),
                          "--output", str(out), "--resolution", "32", "--baselines", "telea"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["methods"] == ["rfr-net", "telea"]
    assert len(report["skipped"]) == 3  # the broken image, once per bin
    assert {"1-10%|rfr-net", "10-20%|telea", "50-60%|rfr-net", "all|telea"} <= set(report["summary"])
    assert report["summary"]["all|rfr-net"]["count"] == 9
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("image,mask,bin") and len(csv_lines) == 1 + 18
    assert "| 50-60% | telea |" in (out / "metrics.md").read_text()
    assert (out / "grid-1-10pct.png").is_file()
