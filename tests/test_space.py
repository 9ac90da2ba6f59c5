"""The demo as a Hugging Face Space (issue 35, part 4): unchanged on a CPU Space and where `spaces` is absent, its
inference behind `spaces.GPU` where `spaces` is present (ZeroGPU attaches a GPU to those calls), and
space/requirements.txt pinning exactly what CI installs and tests."""

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT

# Runs gradio_app in a child: optionally with `spaces` made unimportable, and with spaces.GPU watched (the real
# decorator still does the work); one request through the Inpainter on the scenes example; prints what happened.
CHILD = textwrap.dedent("""
    import importlib.abc, json, sys

    if sys.argv[1] == "without-spaces":
        class NoSpaces(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "spaces":
                    raise ModuleNotFoundError("No module named 'spaces' (blocked by the test)")
        sys.meta_path.insert(0, NoSpaces())
        decorated = None
    else:
        import spaces
        decorated, real_gpu = [], spaces.GPU
        spaces.GPU = lambda function, **options: decorated.append(function.__name__) or real_gpu(function, **options)

    sys.path.insert(0, sys.argv[2])
    import gradio_app
    import numpy as np
    import PIL.Image

    inpainter = gradio_app.Inpainter(sys.argv[3])
    examples = gradio_app.EXAMPLES
    value = {"background": str(examples / "coffee_photo.png"), "layers": [str(examples / "coffee_mask.png")]}
    path, status = inpainter(value)
    photo = np.asarray(PIL.Image.open(examples / "coffee_photo.png").convert("RGB"))
    result = np.asarray(PIL.Image.open(path).convert("RGB"))
    print(json.dumps({"spaces": gradio_app.spaces is not None, "decorated": decorated, "status": status,
                      "changed": bool((result != photo).any()), "same_size": result.shape == photo.shape}))
""")


def run_child(mode, model, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.run([sys.executable, str(script), mode, str(REPO_ROOT), str(model)], cwd=tmp_path,
                          env={**os.environ, "SPACES_ZERO_GPU": ""}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_where_spaces_is_present_the_inference_goes_through_spaces_gpu(tiny_pipeline_dir, tmp_path):
    pytest.importorskip("spaces")
    report = run_child("with-spaces", tiny_pipeline_dir, tmp_path)
    assert report["spaces"] and report["decorated"] == ["inpaint_on_device", "hole_closing_on_device"]
    assert report["changed"] and report["same_size"] and report["status"].startswith("Done in")


def test_where_spaces_is_absent_nothing_changes(tiny_pipeline_dir, tmp_path):
    report = run_child("without-spaces", tiny_pipeline_dir, tmp_path)
    assert not report["spaces"] and report["decorated"] is None
    assert report["changed"] and report["same_size"] and report["status"].startswith("Done in")


def pins(path):
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith(("-", ".")):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not an exact pin"
            found[requirement.name.lower()] = specifier.version
    return found


def test_the_space_pins_what_ci_installs_and_tests():
    space = pins(REPO_ROOT / "space" / "requirements.txt")
    ci = pins(REPO_ROOT / ".ci" / "constraints.txt")
    assert {"torch", "diffusers", "gradio", "spaces"} <= set(space)
    for name, version in space.items():
        assert ci.get(name) == version, f"space/requirements.txt pins {name}=={version}, CI installs {ci.get(name)}"
        installed = re.sub(r"\+.*", "", importlib.metadata.version(name))  # (torch's +cpu build)
        assert installed == version, f"space/requirements.txt pins {name}=={version}, this environment has {installed}"
    front_matter = (REPO_ROOT / "space" / "README.md").read_text()
    assert f"sdk_version: {space['gradio']}" in front_matter


def test_on_a_space_the_app_listens_where_the_space_says(monkeypatch):
    """Spaces set GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT: the app's defaults follow them (an explicit
    127.0.0.1 would leave the Space's proxy nothing to reach); on a machine of one's own it stays private."""
    import gradio_app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    assert (gradio_app.parse_args([]).host, gradio_app.parse_args([]).port) == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert (gradio_app.parse_args([]).host, gradio_app.parse_args([]).port) == ("0.0.0.0", 7861)
    assert gradio_app.parse_args(["--host", "127.0.0.1"]).host == "127.0.0.1"
