"""Writing files and folders so that a crash never leaves one half-written, with ordinary permissions.

Everything is first written under a temporary name in the destination's own folder, then renamed into place (a rename
within one file system is atomic). Python's `tempfile` makes those temporaries private (0600 files, 0700 folders);
what ends up in place gets the modes any other new file would have under the user's umask.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_ordinary(path: str | os.PathLike) -> None:
    """Give `path` (recursively, if a folder) the modes a new file or folder gets under the current umask."""
    mask = _umask()
    path = Path(path)
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    for entry in entries:
        if not entry.is_symlink():
            os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~mask)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; write it inside the `with` block. On success it replaces `path`; on any
    error it is deleted and `path` is left as it was. The temporary is hidden and ends in `.tmp`, not in `path`'s
    extension: one left by a killed process (nothing can delete it then) is never taken for a result by `*.png`-style
    globs, ours or a user's. Writers whose library picks a format from the extension must name the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        make_ordinary(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yields an empty temporary folder beside `path`; fill it inside the `with` block. On success it becomes `path`
    (replacing an existing one only with `overwrite`, else FileExistsError before anything is written); on any error
    it is deleted and `path` is left as it was."""
    path = Path(path).resolve()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another output folder or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".incomplete", dir=path.parent))
    try:
        yield staging
        make_ordinary(staging)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            path.rename(old / "previous")
            staging.rename(path)
            shutil.rmtree(old)
        else:
            staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
