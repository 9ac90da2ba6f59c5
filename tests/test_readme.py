"""The README's commands run as written in a fresh clone after its Quick start: no bare `python`, `rfr-inpaint` or
`accelerate` (they exist only inside .venv), a Python snippet that runs, and outputs that git ignores."""

import itertools
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
FENCED = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCED.findall(README) if lang == language]


def commands() -> list[str]:
    """Every shell command of the README's bash blocks: continuation lines joined, comments dropped, `&&` split."""
    found = []
    for body in blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                found += [part.strip() for part in line.split("&&")]
    return found


def test_every_command_names_a_program_that_exists_after_the_quick_start():
    allowed = ("python3 -m venv .venv", "bash .ci/run")
    assert len(commands()) >= 10
    for command in commands():
        program = command.split()[0]
        assert command.startswith(allowed) or program.startswith(".venv/bin/"), command
        if program.startswith(".venv/bin/") and (REPO_ROOT / ".venv").is_dir():
            assert (REPO_ROOT / program).exists(), f"{program} is not installed in .venv"
    for script in {w for c in commands() for w in c.split() if w.endswith(".py")}:
        assert (REPO_ROOT / script).is_file(), script


def test_pip_installs_use_the_constraints_file():
    for command in commands():
        if "pip install" in command:
            assert "-c .ci/constraints.txt" in command, command
    assert "torch==2.13.0" in (REPO_ROOT / ".ci" / "constraints.txt").read_text()
    assert "torch==" not in (REPO_ROOT / "pyproject.toml").read_text()  # a range there, the pin for CI only


def test_outputs_of_the_readme_commands_are_ignored_by_git():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    outputs = set()
    for command in commands():
        words = shlex.split(command.replace("[", "").replace("]", ""))
        for flag, value in itertools.pairwise(words):
            if flag in ("--output", "--output_dir") and not value.startswith(("docs/", "benchmarks/", "..")):
                outputs.add(value.rstrip("/"))
    assert {"inpainted.png", "eval", "vgg16_features.safetensors", "rfr-faces"} <= outputs
    for output in outputs:
        ignored = subprocess.run(["git", "check-ignore", "-q", output], cwd=REPO_ROOT, check=False)
        assert ignored.returncode == 0, f"{output} (written by a README command) is not git-ignored"


def test_the_python_snippet_runs_as_written(tmp_path):
    (snippet,) = [body for body in blocks("python") if "from_pretrained(DEFAULT_MODEL)" in body]
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, check=False, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.asarray(PIL.Image.open(tmp_path / "inpainted.png").convert("RGB"))
    photo = np.asarray(PIL.Image.open(REPO_ROOT / "examples" / "coffee_photo.png").convert("RGB"))
    assert result.shape == photo.shape and not np.array_equal(result, photo)


MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(page) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCED.sub("", page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """Files and the headings linked to (page.md#heading, or #heading on the same page)."""
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
    checked, broken = 0, []
    for page in pages:
        text = FENCED.sub("", page.read_text())  # (code blocks hold no links)
        for target in MARKDOWN_LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # a URL
                continue
            checked += 1
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target} (no such heading)")
    assert checked >= 10 and not broken, broken
