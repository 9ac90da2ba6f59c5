"""`rfr-inpaint`: folders and single files, formats, what it refuses before doing any work, one-line model errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from rfr_pipeline.cli import STRATEGIES
from rfr_pipeline.cli import main as cli_main
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES as PIPELINE_STRATEGIES

SCRIPT = os.path.join(os.path.dirname(sys.executable), "rfr-inpaint")


@pytest.fixture
def inputs(box_mask, photo, tmp_path):
    photo().save(tmp_path / "in.png")
    box_mask().save(tmp_path / "mask.png")
    return tmp_path / "in.png", tmp_path / "mask.png"


def single(inputs, output, model, *extra):
    return ["--image", str(inputs[0]), "--mask", str(inputs[1]), "--output", str(output), "--model", str(model),
            *extra]


def test_folder_mode_skips_bad_files_and_reports_them(box_mask, photo, tiny_pipeline_dir, tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for n in range(2):
        photo(seed=n).save(images / f"p{n}.jpg", quality=95)
        box_mask().save(masks / f"p{n}.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    box_mask().save(masks / "broken.png")
    photo(seed=5).save(images / "lonely.png")  # no mask
    (images / "._p0.jpg").write_bytes(b"\x00\x05\x16\x07 macOS metadata")  # hidden files are not photos
    (masks / "._p0.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    before = {p: p.read_bytes() for p in images.iterdir()}

    code = cli_main(["--image", str(images), "--mask", str(masks), "--output", str(out),
                     "--model", str(tiny_pipeline_dir)])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "lonely.png: no mask" in err and "2 of 3 images inpainted" in err
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "p0.png", "p1.png"]
    records = {os.path.basename(r["image"]): r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}
    assert records["p0.jpg"]["status"] == records["p1.jpg"]["status"] == "done"
    assert records["broken.png"]["status"] == "failed" and "cannot identify image file" in records["broken.png"]["error"]
    assert records["lonely.png"]["status"] == "failed" and records["lonely.png"]["output"] is None
    hole = np.asarray(box_mask()) > 0
    for n in range(2):
        result = np.asarray(PIL.Image.open(out / f"p{n}.png"))
        source = np.asarray(PIL.Image.open(images / f"p{n}.jpg"))
        assert np.array_equal(result[~hole], source[~hole])
    assert {p: p.read_bytes() for p in images.iterdir()} == before


def test_folder_mode_keeps_existing_results_unless_asked_and_takes_one_mask_for_all(box_mask, photo, tiny_pipeline_dir, tmp_path,
                                                                                    capsys):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    for n in range(3):
        photo(seed=n).save(images / f"p{n}.png")
    box_mask().save(tmp_path / "mask.png")
    args = ["--image", str(images), "--mask", str(tmp_path / "mask.png"), "--output", str(out),
            "--model", str(tiny_pipeline_dir)]
    assert cli_main(args) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]
    (out / "p1.png").write_bytes(b"an earlier result")
    (out / "p2.png").unlink()  # as if the run had been killed before it
    capsys.readouterr()
    assert cli_main(args) == 0  # a second launch does what is missing and keeps the rest
    err = capsys.readouterr().err
    assert "1 of 1 images inpainted" in err and "kept 2 existing result(s)" in err
    assert (out / "p1.png").read_bytes() == b"an earlier result" and (out / "p2.png").is_file()
    assert cli_main([*args, "--overwrite"]) == 0
    assert PIL.Image.open(out / "p1.png").size == (128, 96)


def test_files_differing_only_in_extension_are_refused_before_any_work(box_mask, photo, tiny_pipeline_dir, tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    photo(seed=0).save(images / "x.jpg")
    photo(seed=1).save(images / "x.png")
    box_mask().save(masks / "x.png")
    assert cli_main(["--image", str(images), "--mask", str(masks), "--output", str(out),
                     "--model", str(tiny_pipeline_dir)]) == 2
    assert "x.jpg and x.png" in capsys.readouterr().err
    assert not out.exists()
    (images / "x.png").unlink()
    box_mask().save(masks / "x.webp")  # two masks for one photo: ambiguous too
    assert cli_main(["--image", str(images), "--mask", str(masks), "--output", str(out),
                     "--model", str(tiny_pipeline_dir)]) == 2
    assert "x.png and x.webp" in capsys.readouterr().err
    assert not out.exists()


def test_output_paths_that_cannot_work_are_refused_before_the_model_loads(box_mask, photo, inputs, tmp_path, capsys,
                                                                          monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("rfr_pipeline.cli.load_pipeline", no_model)
    monkeypatch.setattr("rfr_pipeline.batch.load_pipeline", no_model, raising=False)
    folder = tmp_path / "photos"
    folder.mkdir()
    photo().save(folder / "a.png")
    box_mask().save(tmp_path / "m.png")
    folder_args = ["--image", str(folder), "--mask", str(tmp_path / "m.png"), "--model", "scenes"]
    # The input folder as the output: results and manifest would mix with the photos.
    assert cli_main([*folder_args, "--output", str(folder)]) == 2
    assert f"--output {folder} is the --image folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
    # A folder of photos with a file name as the output: not silently a folder named like a file.
    assert cli_main([*folder_args, "--output", str(tmp_path / "y.jpg")]) == 2
    assert "--output must be a folder too" in capsys.readouterr().err and not (tmp_path / "y.jpg").exists()
    # A path through a file: named as given, not as an internal temporary file.
    (tmp_path / "afile").write_text("x")
    assert cli_main(single(inputs, tmp_path / "afile" / "out.png", "scenes")) == 2
    err = capsys.readouterr().err
    assert f"cannot create {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file" in err and ".tmp" not in err
    if os.geteuid() != 0:  # (root may write anywhere)
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert cli_main(single(inputs, locked / "out.png", "scenes")) == 2
        assert f"cannot write into {locked} (permission denied)" in capsys.readouterr().err


@pytest.mark.parametrize("name, fmt", [("r.png", "PNG"), ("r.JPG", "JPEG"), ("r.jpeg", "JPEG"), ("r.webp", "WEBP")])
def test_a_single_result_takes_the_format_of_its_extension(box_mask, tiny_pipeline_dir, inputs, tmp_path, name, fmt):
    assert cli_main(single(inputs, tmp_path / name, tiny_pipeline_dir)) == 0
    with PIL.Image.open(tmp_path / name) as result:
        assert result.format == fmt and result.size == (128, 96)
    if fmt != "JPEG":  # lossless formats keep the known pixels exactly
        hole = np.asarray(box_mask()) > 0
        source = np.asarray(PIL.Image.open(inputs[0]))
        assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / name).convert("RGB"))[~hole], source[~hole])


def test_flip_average_option_reaches_the_pipeline(tiny_pipeline_dir, inputs, tmp_path):
    from rfr_pipeline import RFRInpaintPipeline

    pipe = RFRInpaintPipeline.from_pretrained(tiny_pipeline_dir)
    image, mask = (PIL.Image.open(p) for p in inputs)
    for flag, flip in (("--flip-average", True), ("--no-flip-average", False)):
        assert cli_main(single(inputs, tmp_path / f"{flip}.png", tiny_pipeline_dir, flag)) == 0
        expected = np.asarray(pipe(image, mask, flip_average=flip).images[0])
        assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / f"{flip}.png")), expected), flag
    assert not np.array_equal(*(np.asarray(PIL.Image.open(tmp_path / f"{flip}.png")) for flip in (True, False)))


def test_restore_detail_option_reaches_the_pipeline(tiny_pipeline_dir, tmp_path):
    from rfr_pipeline import RFRInpaintPipeline

    grain = np.random.default_rng(0).choice([70, 140], size=(320, 320, 1)).repeat(3, axis=2).astype(np.uint8)
    PIL.Image.fromarray(grain).save(tmp_path / "grain.png")
    hole = np.zeros((320, 320), np.uint8)
    hole[100:220, 100:220] = 255  # its 152-px window is scaled to --working-size 64: detail to restore
    PIL.Image.fromarray(hole).save(tmp_path / "hole.png")
    pipe = RFRInpaintPipeline.from_pretrained(tiny_pipeline_dir)
    results = {}
    for flag, restore in (("--restore-detail", True), ("--no-restore-detail", False)):
        out = tmp_path / f"{restore}.png"
        assert cli_main(single((tmp_path / "grain.png", tmp_path / "hole.png"), out, tiny_pipeline_dir, flag,
                               "--working-size", "64")) == 0
        results[restore] = np.asarray(PIL.Image.open(out))
        expected = pipe(PIL.Image.fromarray(grain), PIL.Image.fromarray(hole), working_size=64,
                        restore_detail=restore).images[0]
        assert np.array_equal(results[restore], np.asarray(expected)), flag
    assert not np.array_equal(results[True], results[False])


def test_single_file_refusals_and_folders(tiny_pipeline_dir, inputs, tmp_path, capsys):
    model = tiny_pipeline_dir
    assert cli_main(single(inputs, inputs[0], model)) == 2
    assert "refusing to overwrite input files" in capsys.readouterr().err
    assert cli_main(single(inputs, tmp_path / "result.gif", model)) == 2
    assert "cannot write .gif results" in capsys.readouterr().err
    umask = os.umask(0o022)
    try:
        assert cli_main(single(inputs, tmp_path / "result.png", model)) == 0
    finally:
        os.umask(umask)
    assert (tmp_path / "result.png").stat().st_mode & 0o777 == 0o644  # not the temporary file's private 0600
    (tmp_path / "result.png").write_bytes(b"keep me")
    assert cli_main(single(inputs, tmp_path / "result.png", model)) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "result.png").read_bytes() == b"keep me"
    assert cli_main(single(inputs, tmp_path / "result.png", model, "--overwrite")) == 0
    assert PIL.Image.open(tmp_path / "result.png").format == "PNG"
    (tmp_path / "results.v2").mkdir()  # an existing folder, whatever its name looks like
    assert cli_main(single(inputs, tmp_path / "results.v2", model)) == 0
    assert (tmp_path / "results.v2" / "in.png").is_file()
    assert cli_main(single(inputs, tmp_path / "new-folder", model)) == 0  # no image extension: a folder
    assert (tmp_path / "new-folder" / "in.png").is_file()
    assert not [p for p in tmp_path.rglob(".*tmp*")]  # no temporary files left behind


def test_a_mask_of_another_size_names_the_option_that_resizes_it(box_mask, tiny_pipeline_dir, inputs, tmp_path, capsys):
    box_mask(48, 64, boxes=((10, 15, 25, 35),)).save(inputs[1])
    assert cli_main(single(inputs, tmp_path / "r.png", tiny_pipeline_dir)) == 1
    err = capsys.readouterr().err
    assert "--resize-mask" in err and "resize_mask=True" not in err
    assert cli_main(single(inputs, tmp_path / "r.png", tiny_pipeline_dir, "--resize-mask")) == 0
    assert PIL.Image.open(tmp_path / "r.png").size == (128, 96)


def broken_copy(source, tmp_path, damage):
    folder = tmp_path / "broken-model"
    shutil.copytree(source, folder)
    damage(folder)
    return folder


def truncate_weights(folder):
    weights = folder / "rfrnet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])


def spoil_config(folder):
    config = folder / "rfrnet" / "config.json"
    config.write_text(config.read_text().replace('"trunk_channels": 8', '"trunk_channels": "eight"'))


@pytest.mark.parametrize("case", ["missing", "misspelt", "repo-not-cached", "truncated", "bad-config", "no-cuda",
                                  "bogus-device", "file-not-folder"])
def test_model_and_device_errors_are_one_line_with_exit_status_2(case, tiny_pipeline_dir, inputs, tmp_path, capsys):
    model, extra = str(tiny_pipeline_dir), []
    expected = {
        "missing": "no such folder", "misspelt": "no such folder", "repo-not-cached": "not in the local Hugging Face "
        "cache", "truncated": "diffusion_pytorch_model.safetensors is not a readable safetensors file",
        "bad-config": "config.json: trunk_channels must be a positive integer, got 'eight'",
        "no-cuda": "CUDA is not available", "bogus-device": "not a torch device", "file-not-folder": "is a file",
    }[case]
    if case == "missing":
        model = "./models/rfr-faces"
    elif case == "misspelt":
        model = str(tiny_pipeline_dir.parent / "pipee")  # its parent folder exists: a typo, not a repo id
    elif case == "repo-not-cached":
        model = "someone/rfr-not-downloaded"  # tests run offline with an empty cache
    elif case == "truncated":
        model = str(broken_copy(tiny_pipeline_dir, tmp_path, truncate_weights))
    elif case == "bad-config":
        model = str(broken_copy(tiny_pipeline_dir, tmp_path, spoil_config))
    elif case == "no-cuda":
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
        extra = ["--device", "cuda"]
    elif case == "bogus-device":
        extra = ["--device", "gpu0"]
    elif case == "file-not-folder":
        model = str(inputs[0])
    assert cli_main(single(inputs, tmp_path / "r.png", model, *extra)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not (tmp_path / "r.png").exists()
    assert cli_main(single(inputs, tmp_path / "r.png", model, *extra, "--debug")) == 2
    assert "Traceback" in capsys.readouterr().err


def test_the_console_script_runs_quietly_and_its_help_needs_neither_torch_nor_diffusers(tiny_pipeline_dir, inputs,
                                                                                      tmp_path):
    proc = subprocess.run([SCRIPT, *single(inputs, tmp_path / "out", tiny_pipeline_dir, "--strategy", "crop")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "in.png").is_file()
    assert "Loading pipeline components" not in proc.stderr and "it/s" not in proc.stderr  # no progress bars
    probe = ("import sys\nfrom rfr_pipeline import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print('heavy:', sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--resize-mask" in proc.stdout and "heavy: []" in proc.stdout, proc.stderr
    assert STRATEGIES == PIPELINE_STRATEGIES


def test_ctrl_c_in_a_folder_job_says_how_far_it_got_in_one_line(box_mask, photo, tiny_pipeline_dir, tmp_path):
    import signal
    import time

    images, output = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    for n in range(80):  # photos large enough that the job cannot finish before the signal arrives
        photo(384, 512, seed=n).save(images / f"p{n:03d}.png")
    box_mask(384, 512, ((100, 120, 300, 400),)).save(tmp_path / "mask.png")
    # (As from a terminal: pytest-xdist's workers ignore SIGINT, and a child would inherit that and never see it.)
    job = subprocess.Popen([SCRIPT, "--image", str(images), "--mask", str(tmp_path / "mask.png"), "--output",
                            str(output), "--model", str(tiny_pipeline_dir)], stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while len(list(output.glob("*.png"))) < 3:
        assert job.poll() is None and time.time() < deadline, job.stderr.read() if job.poll() is not None else ""
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)  # what Ctrl-C sends
    err = job.communicate(timeout=60)[1]
    assert "80 of 80 images inpainted" not in err, "the job finished before the signal: nothing was tested"
    assert job.returncode == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    done = len(list(output.glob("*.png")))
    assert last == f"interrupted: {done} of 80 images done (in {output}); run the same command again to finish"
