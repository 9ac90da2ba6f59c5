"""The model shipped inside the package (rfr_pipeline.DEFAULT_MODEL): it loads with no network, is what the command
line and the demo use when no model is named, and fills face holes better than classical inpainting."""

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import rfr_pipeline
from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline
from rfr_pipeline.cli import main as cli_main
from rfr_pipeline.evaluation import load_mask, load_photo
from tests.conftest import REPO_ROOT, SHARED

EXAMPLES = REPO_ROOT / "examples"
VAL = SHARED / "data" / "celeba" / "val"
MASKS = SHARED / "data" / "masks" / "irregular"


@pytest.fixture(scope="module")
def pipe():
    return RFRInpaintPipeline.from_pretrained(DEFAULT_MODEL)  # HF_HUB_OFFLINE=1 (conftest): no network


def test_the_default_model_ships_inside_the_package_and_is_small():
    folder = Path(DEFAULT_MODEL)
    assert folder.parent == Path(rfr_pipeline.__file__).parent
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "RFRInpaintPipeline" and index["default_strategy"] == "auto"
    assert index["default_flip_average"] is True  # served as it was evaluated
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) <= 40e6
    card = (folder / "README.md").read_text()
    assert "demo model" in card.lower() and "CelebA" in card and "research" in card
    assert "| 10-20% | telea |" in card  # its evaluation table
    for config in folder.rglob("*.json"):  # no path of the machine it was built on
        assert "_name_or_path" not in json.loads(config.read_text()), config


def test_it_inpaints_the_example_face_and_leaves_the_rest_alone(pipe):
    photo = PIL.Image.open(EXAMPLES / "astronaut_photo.png").convert("RGB")
    layer = np.asarray(PIL.Image.open(EXAMPLES / "astronaut_mask.png"))[..., 3] > 0
    result = np.asarray(pipe(photo, PIL.Image.fromarray(layer)).images[0]).astype(int)
    original = np.asarray(photo).astype(int)
    assert result.shape == original.shape
    assert np.array_equal(result[~layer], original[~layer])
    filled = result[layer]
    # Skin-coloured, not grey or noise: red above blue, and a smooth fill (the hole's pixels vary little).
    assert filled[:, 0].mean() > filled[:, 2].mean() + 20, filled.mean(0)
    assert filled.std(0).max() < 40, filled.std(0)


def test_the_command_line_uses_it_when_no_model_is_named(tmp_path):
    out = tmp_path / "result.png"
    assert cli_main(["--image", str(EXAMPLES / "astronaut_photo.png"), "--mask", str(EXAMPLES / "astronaut_mask.png"),
                     "--output", str(out)]) == 0
    result = np.asarray(PIL.Image.open(out).convert("RGB")).astype(int)
    photo = np.asarray(PIL.Image.open(EXAMPLES / "astronaut_photo.png").convert("RGB")).astype(int)
    hole = np.asarray(PIL.Image.open(EXAMPLES / "astronaut_mask.png"))[..., 3] > 0
    assert np.array_equal(result[~hole], photo[~hole]) and not np.array_equal(result[hole], photo[hole])


def test_the_demo_uses_it_when_no_model_is_named(monkeypatch):
    gradio_app = pytest.importorskip("gradio_app", reason="gradio is not installed")
    monkeypatch.delenv("RFR_MODEL", raising=False)
    assert gradio_app.resolve_model(None) == DEFAULT_MODEL
    demo = gradio_app.build_demo(gradio_app.Inpainter(gradio_app.resolve_model(None)))
    notes = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-note"]
    assert len(notes) == 1 and "face" in notes[0].value  # users are told what the built-in model is for
    strategy = [b for b in demo.blocks.values() if getattr(b, "label", None) == "Large images"]
    assert strategy[0].value == "auto"  # the checkpoint's own default


@pytest.mark.skipif(not (VAL.is_dir() and MASKS.is_dir()), reason="../shared/data (CelebA val, NVIDIA masks) absent")
def test_it_fills_real_face_holes_with_plausible_content(pipe):
    """Held-out CelebA photos × NVIDIA masks at the model's resolution: the fill is far closer to the truth than a
    flat fill with the photo's mean colour, and on a par with OpenCV's Telea (the issue's bar of beating Telea and
    Navier–Stokes everywhere is checked by scripts/evaluate.py on all 200 photos, not here)."""
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
    size = pipe.rfrnet.config.sample_size
    photos = sorted(VAL.iterdir())[:6]
    masks = [MASKS / f"{n:05d}.png" for n in (4100, 6100, 8100)]  # the 20-30 %, 30-40 % and 40-50 % bins
    errors = {"ours": [], "telea": [], "flat": []}
    for path in photos:
        truth = load_photo(path, size).astype(float)
        for mask_path in masks:
            hole = load_mask(mask_path, size)
            fills = {
                "ours": np.asarray(pipe(truth.astype(np.uint8), hole, strategy="original").images[0]),
                "telea": cv2.inpaint(truth.astype(np.uint8), hole.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA),
                "flat": np.broadcast_to(truth[~hole].mean(0), truth.shape),
            }
            for name, fill in fills.items():
                errors[name].append(np.abs(fill.astype(float) - truth)[hole].mean())
    ours, telea, flat = (np.mean(errors[k]) for k in ("ours", "telea", "flat"))
    assert ours < 0.6 * flat, (ours, flat)
    assert ours < 1.15 * telea, (ours, telea)
