"""Atomic writes: a result appears whole or not at all, and a temporary never passes for a result."""

import os

import pytest

from rfr_pipeline.atomic import atomic_file


def test_a_file_appears_whole_with_ordinary_modes_and_its_temporary_is_hidden_and_not_an_image(tmp_path):
    target = tmp_path / "result.png"
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".result.png.") and tmp.suffix == ".tmp"
        assert not list(tmp_path.glob("*.png"))  # what a killed writer would leave matches no image glob
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done" and os.listdir(tmp_path) == ["result.png"]
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["result.png"]
