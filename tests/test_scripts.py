"""Scripts: official checkpoint conversion, Hub upload checks, packaging the default model, the example grid."""


import json

import numpy as np
import PIL.Image
import pytest
import safetensors.torch
import torch

from rfr_pipeline import RFRInpaintPipeline
from scripts import convert_official_checkpoint, make_example_grid, package_default_model, push_to_hub
from tests.conftest import REPO_ROOT, load_official_fixture, requires_shared
from tests.official_reference import OfficialRFRNet


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("official") / "checkpoint.pth"
    torch.save({"n_iter": 1, "generator": OfficialRFRNet().state_dict(), "optimizer_G": {}}, path)
    return path


def test_conversion_writes_a_complete_pipeline_folder(official_checkpoint, tmp_path):
    out = tmp_path / "converted"
    code = convert_official_checkpoint.main(["--checkpoint", str(official_checkpoint), "--output", str(out),
                                             "--variant", "fp16", "--dataset", "celeba", "--repo-id", "me/rfr"])
    assert code == 0
    assert (out / "rfrnet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (out / "rfrnet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    card = (out / "README.md").read_text()
    assert "RFR-Net (CelebA), official weights" in card and "me/rfr" in card and "research" in card
    assert "31,224,065" in card and "{{" not in card
    # It loads with diffusers alone too (tests/test_remote_code.py), and its card says how.
    assert (out / "rfr_inpaint.py").is_file() and (out / "rfrnet" / "rfr_pipeline.py").is_file()
    assert 'custom_pipeline="rfr_inpaint", trust_remote_code=True' in card
    pipe = RFRInpaintPipeline.from_pretrained(out)
    assert pipe.rfrnet.config.sample_size == 256
    half = RFRInpaintPipeline.from_pretrained(out, variant="fp16", dtype=torch.float16)
    assert half.rfrnet.dtype == torch.float16
    # Converting again into the same folder is refused unless asked.
    assert convert_official_checkpoint.main(["--checkpoint", str(official_checkpoint), "--output", str(out)]) == 2
    assert convert_official_checkpoint.main(["--checkpoint", str(official_checkpoint), "--output", str(out),
                                             "--overwrite"]) == 0


def test_conversion_refuses_files_that_are_not_checkpoints(tmp_path, capsys):
    bogus = tmp_path / "photo.pth"
    PIL.Image.new("RGB", (8, 8)).save(bogus, format="PNG")
    assert convert_official_checkpoint.main(["--checkpoint", str(bogus), "--output", str(tmp_path / "o")]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@requires_shared
@pytest.mark.numerics
@pytest.mark.parametrize("seed", [0, 1])
def test_converted_fixture_reproduces_the_official_output_through_the_pipeline(seed, tmp_path):
    fixture = load_official_fixture(seed)
    checkpoint = tmp_path / "official.pth"
    torch.save({"n_iter": 0, "generator": fixture["state_dict"], "optimizer_G": {}}, checkpoint)
    assert convert_official_checkpoint.main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "p")]) == 0
    pipe = RFRInpaintPipeline.from_pretrained(tmp_path / "p")
    image, hole = fixture["image"], fixture["hole"].float()
    result = pipe(image=image, mask_image=hole[0], output_type="pt").images
    # The pipeline shows images in [0, 1]: the official composite, clamped as saving it to a file does.
    torch.testing.assert_close(result, fixture["comp"].clamp(0, 1), rtol=0, atol=1e-5)


def test_push_to_hub_checks_the_folder_before_uploading(tmp_path, capsys):
    assert push_to_hub.main(["--folder", str(tmp_path), "--repo-id", "me/x"]) == 2
    assert "no model_index.json" in capsys.readouterr().err


def test_packaging_an_embedded_model_writes_its_serving_defaults_and_card_and_refuses_oversize(box_mask, photo, tiny_pipeline_dir,
                                                                                              tmp_path, capsys):
    evaluations = []
    for resolution, psnr in ((256, "30.00"), (96, "31.00")):
        evaluation = tmp_path / f"eval{resolution}"
        evaluation.mkdir()
        (evaluation / "metrics.md").write_text(f"| hole area | method | PSNR ↑ |\n|---|---|---|\n| 10-20% | rfr-net | {psnr} |\n")
        rows = [{"image": f"{n}.jpg"} for n in range(resolution // 32) for _ in ("10-20%", "20-30%")]
        (evaluation / "metrics.json").write_text(json.dumps({"resolution": resolution, "per_image": rows}))
        evaluations.append(str(evaluation))
    notes = tmp_path / "notes.md"
    notes.write_text("Trained for 3 steps on a test machine.")
    out = tmp_path / "default_model"
    args = ["--pipeline", str(tiny_pipeline_dir), "--evaluation", *evaluations, "--training-notes", str(notes),
            "--output", str(out), "--strategy", "resize", "--working-size", "64", "--fp16"]
    assert package_default_model.main(args) == 0
    pipe = RFRInpaintPipeline.from_pretrained(out)
    assert pipe.config.default_strategy == "resize" and pipe.config.default_working_size == 64
    assert pipe.config.default_flip_average is False
    weights = safetensors.torch.load_file(out / "rfrnet" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}  # half the size in git
    assert pipe.rfrnet.dtype == torch.float32  # and run in float32 unless the user asks otherwise
    card = (out / "README.md").read_text()
    assert "Trained for 3 steps on a test machine." in card
    # Both tables, each with its resolution and its number of photos.
    assert "8 photos of `data/celeba/val`" in card and "at 256²" in card and "| 10-20% | rfr-net | 30.00 |" in card
    assert "3 photos of `data/celeba/val`" in card and "at 96²" in card and "| 10-20% | rfr-net | 31.00 |" in card
    assert "resizing photos larger than 64 px" in card and "mirror image" not in card
    assert "research" in card and "faces" in card and "fine texture (hair, fur, foliage) does not" in card
    assert "from_pretrained(FACES_MODEL)" in card and "rfr-inpaint --model faces --image photo.png" in card
    assert pipe(photo(), box_mask()).images[0].size == (128, 96)

    # The serving defaults of a model trained at one size and served at another, flip-averaged.
    served = tmp_path / "served"
    assert package_default_model.main([*args[:-7], "--output", str(served), "--sample-size", "80",
                                       "--flip-average"]) == 0
    pipe = RFRInpaintPipeline.from_pretrained(served)
    assert pipe.rfrnet.config.sample_size == 80 and pipe.config.default_strategy == "auto"
    assert pipe.config.default_working_size == 160 and pipe.config.default_flip_average is True
    card = (served / "README.md").read_text()
    assert "trained on 80×80 crops" in card and "at full size up to 160 px" in card and "mirror image" in card

    # The general-scene model: its own card (data, licence, how to load it), the same serving defaults.
    scenes = tmp_path / "scenes_model"
    assert package_default_model.main(["--kind", "scenes", *args[:-7], "--output", str(scenes), "--flip-average"]) == 0
    card = (scenes / "README.md").read_text()
    assert "general-scene model" in card and "2,719 photos of outdoor and indoor scenes" in card
    assert "8 photos of `data/scenes/val`" in card and "SUN397 and ImageNet: non-commercial research use only" in card
    assert "from_pretrained(SCENES_MODEL)" in card and "rfr-inpaint --model scenes --image photo.png" in card
    assert "--model scenes --output model.onnx" in card and "face" not in card.lower()
    assert RFRInpaintPipeline.from_pretrained(scenes).config.default_flip_average is True

    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert package_default_model.main([*args, "--strategy", "crop", "--max-megabytes", "0.001"]) == 1
    assert "over the 0.001 MB limit" in capsys.readouterr().err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # left as it was
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".default_model")]  # no staging left behind
    with pytest.raises(SystemExit):
        package_default_model.main([*args[:2], "--evaluation", str(tmp_path / "nowhere"), *args[5:]])


def test_example_grid_has_a_row_per_mask_and_a_column_per_method(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert make_example_grid.main(["--model", str(REPO_ROOT / "rfr_pipeline" / "faces_model"),
                                   "--image", str(REPO_ROOT / "examples" / "astronaut_photo.png"),
                                   "--mask", str(REPO_ROOT / "examples" / "astronaut_mask.png"),
                                   "--strokes", "0.2:1", "--resolution", "64", "--output", str(out)]) == 0
    grid = np.asarray(PIL.Image.open(out))
    assert grid.shape == (2 * 64, 5 * 64, 3)  # masked / rfr-net / telea / navier-stokes / original
    original = grid[:64, 4 * 64:]
    assert np.array_equal(grid[64:, 4 * 64:], original)  # the same photo on every row
    stroke_hole = np.all(grid[64:, :64] == 255, axis=-1) & ~np.all(original == 255, axis=-1)
    assert 0.1 < stroke_hole.mean() < 0.35  # about the asked-for 20 %
    ours = grid[64:, 64:128]
    assert np.array_equal(ours[~stroke_hole], original[~stroke_hole])  # composited: known pixels untouched
    assert np.abs(ours[stroke_hole].astype(int) - 255).mean() > 50  # the hole is filled, not left white
    jpeg = tmp_path / "grid.jpg"  # grids of large photos: JPEG by the file's name
    assert make_example_grid.main(["--model", str(REPO_ROOT / "rfr_pipeline" / "faces_model"),
                                   "--image", str(REPO_ROOT / "examples" / "astronaut_photo.png"), "--strokes", "0.2:1",
                                   "--resolution", "64", "--strategy", "resize", "--output", str(jpeg)]) == 0
    with PIL.Image.open(jpeg) as image:
        assert image.format == "JPEG" and image.size == (5 * 64, 64)
    as_it_is = tmp_path / "as-it-is.png"  # --resolution 0: the photo at its own size (here 96×128), not squared
    small = tmp_path / "small.png"
    PIL.Image.open(REPO_ROOT / "examples" / "raccoon_photo.png").resize((128, 96)).save(small)
    assert make_example_grid.main(["--model", str(REPO_ROOT / "rfr_pipeline" / "scenes_model"), "--image", str(small),
                                   "--strokes", "0.1:1", "--resolution", "0", "--output", str(as_it_is)]) == 0
    grid = np.asarray(PIL.Image.open(as_it_is))
    assert grid.shape == (96, 5 * 128, 3) and np.array_equal(grid[:, 4 * 128:], np.asarray(PIL.Image.open(small)))
    with pytest.raises(SystemExit):
        make_example_grid.main(["--model", "x", "--image", "x", "--strokes", "20%", "--output", str(out)])
    assert "expected AREA:SEED" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        make_example_grid.main(["--model", "x", "--image", str(tmp_path / "missing.png"), "--strokes", "0.2:1",
                                "--output", str(out)])
    assert "missing.png is not a file" in capsys.readouterr().err
    with_patchmatch = tmp_path / "with-patchmatch.png"  # the content-aware-fill baseline as a column of its own
    assert make_example_grid.main(["--model", str(REPO_ROOT / "rfr_pipeline" / "faces_model"),
                                   "--image", str(REPO_ROOT / "examples" / "astronaut_photo.png"), "--strokes", "0.2:1",
                                   "--resolution", "64", "--baselines", "telea,patchmatch",
                                   "--output", str(with_patchmatch)]) == 0
    assert np.asarray(PIL.Image.open(with_patchmatch)).shape == (64, 5 * 64, 3)  # masked / ours / 2 / original
    with pytest.raises(SystemExit):
        make_example_grid.main(["--model", "x", "--image", "x", "--strokes", "0.2:1", "--baselines", "photoshop",
                                "--output", str(out)])
    assert "--baselines takes some of telea, navier-stokes, patchmatch" in capsys.readouterr().err
