"""A saved pipeline loads with diffusers alone (issue 35, part 1): `DiffusionPipeline.from_pretrained(folder_or_repo_id,
custom_pipeline="rfr_inpaint", trust_remote_code=True)` in a process where rfr_pipeline cannot be imported, offline,
from a local folder and from a pre-filled Hub cache, gives the package's pixels; the package keeps loading its own
code."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rfr_pipeline import RFRInpaintPipeline, remote_code

# Runs in a child process: rfr_pipeline cannot be imported there (as if it were not installed), only torch, diffusers
# and safetensors; prints the pipeline's output on the test photo as JSON.
WITHOUT_THE_PACKAGE = textwrap.dedent("""
    import importlib.abc, json, sys

    class NoRfrPipeline(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "rfr_pipeline":
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: this test has no rfr-pipeline)")

    sys.meta_path.insert(0, NoRfrPipeline())
    import numpy as np
    import PIL.Image
    from diffusers import DiffusionPipeline

    source, cache_dir, trust = sys.argv[1], sys.argv[2] or None, sys.argv[3] == "trust"
    pipe = DiffusionPipeline.from_pretrained(source, cache_dir=cache_dir, custom_pipeline="rfr_inpaint",
                                             trust_remote_code=trust)
    pipe.set_progress_bar_config(disable=True)
    result = pipe(PIL.Image.open(sys.argv[4]), PIL.Image.open(sys.argv[5]), output_type="np").images
    print(json.dumps({
        "pipeline": type(pipe).__module__ + "." + type(pipe).__name__,
        "rfrnet": type(pipe.rfrnet).__module__ + "." + type(pipe.rfrnet).__name__,
        "imported_rfr_pipeline": sorted(m for m in sys.modules if m.split(".")[0] == "rfr_pipeline"),
        "result": np.asarray(result).tolist(),
    }))
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory, make_model, photo, box_mask):
    folder = tmp_path_factory.mktemp("remote") / "saved"
    pipe = RFRInpaintPipeline(rfrnet=make_model(sample_size=64))
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(folder)
    inputs = tmp_path_factory.mktemp("inputs")
    photo().save(inputs / "photo.png")
    box_mask().save(inputs / "mask.png")
    expected = pipe(photo(), box_mask(), output_type="np").images
    return folder, inputs, expected


def without_the_package(tmp_path, source, cache_dir="", trust=True, inputs=None):
    script = tmp_path / "plain_diffusers.py"
    script.write_text(WITHOUT_THE_PACKAGE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}  # its own module cache
    return subprocess.run(
        [sys.executable, str(script), str(source), str(cache_dir), "trust" if trust else "no",
         str(inputs / "photo.png"), str(inputs / "mask.png")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def check_same_pipeline(proc, expected):
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["imported_rfr_pipeline"] == []
    assert report["pipeline"].startswith("diffusers_modules.") and report["pipeline"].endswith(".RFRInpaintPipeline")
    assert report["rfrnet"].startswith("diffusers_modules.") and report["rfrnet"].endswith(".RFRNet")
    np.testing.assert_array_equal(np.asarray(report["result"], dtype=np.float32), expected)


def test_a_saved_folder_loads_with_diffusers_alone_and_gives_the_same_pixels(saved, tmp_path):
    folder, inputs, expected = saved
    check_same_pipeline(without_the_package(tmp_path, folder, inputs=inputs), expected)


def test_a_repo_id_loads_with_diffusers_alone_from_the_offline_hub_cache(saved, tmp_path):
    folder, inputs, expected = saved
    repo = tmp_path / "hub" / "models--rfr-tests--plain-diffusers"
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    for path in folder.rglob("*"):
        if path.is_file():
            target = repo / "snapshots" / commit / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    proc = without_the_package(tmp_path, "rfr-tests/plain-diffusers", tmp_path / "hub", inputs=inputs)
    check_same_pipeline(proc, expected)


def test_the_shipped_code_runs_only_when_trusted(saved, tmp_path):
    folder, inputs, _ = saved
    proc = without_the_package(tmp_path, folder, trust=False, inputs=inputs)
    assert proc.returncode != 0 and "trust_remote_code=True" in proc.stderr


def test_the_shipped_code_is_the_package_source_at_save_time(saved):
    folder, _, _ = saved
    package = Path(remote_code.__file__).parent
    for target, modules, entry in ((folder, remote_code.PIPELINE_MODULES, remote_code.PIPELINE_ENTRY),
                                   (folder / "rfrnet", remote_code.MODEL_MODULES, remote_code.COMPONENT_ENTRY)):
        for module, name in modules:
            assert (target / f"{module}.py").read_text() == (package / f"{module}.py").read_text(), module
            assert f"from .{module} import {name}" in (target / f"{entry}.py").read_text()
    # model_index.json is what the package always wrote: it, not the shipped copy, loads where it is installed.
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "RFRInpaintPipeline" and index["rfrnet"] == ["rfr_pipeline", "RFRNet"]


def test_the_package_loads_its_own_code_not_the_shipped_copy(saved):
    from diffusers import DiffusionPipeline

    from rfr_pipeline import RFRNet

    folder, _, _ = saved
    for loaded in (RFRInpaintPipeline.from_pretrained(folder), DiffusionPipeline.from_pretrained(folder)):
        assert type(loaded) is RFRInpaintPipeline and type(loaded.rfrnet) is RFRNet  # no trust_remote_code needed


def test_what_ships_no_code(tmp_path, make_model):
    """`ship_code=False` (the package's embedded models: the code is the package itself) writes weights only, and
    no embedded model in the repository holds a second copy of the code."""
    RFRInpaintPipeline(rfrnet=make_model()).save_pretrained(tmp_path / "bare", ship_code=False)
    assert not list((tmp_path / "bare").rglob("*.py"))
    package = Path(remote_code.__file__).parent
    assert not list((package / "scenes_model").rglob("*.py")) and not list((package / "faces_model").rglob("*.py"))
