"""The frozen VGG16 feature extractor of RFR-Net's perceptual and style losses, defined here (no torchvision).

Layer indices match torchvision's `vgg16().features`, so torchvision's `vgg16-397923af.pth` (or a safetensors file
with the same `features.N.weight|bias` names) loads directly. Only the layers up to pool3 exist (features[:17]).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# torchvision's layout: numbers are conv output channels, "M" a 2×2 max-pool (the last pool5 left out).
VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG16_TO_POOL3 = VGG16_LAYOUT[:10]
_POOL_ENDS = (5, 10, 17)  # features[:5] → pool1, [5:10] → pool2, [10:17] → pool3
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14)
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def vgg16_layers(layout: list) -> nn.Sequential:
    """torchvision's `vgg16().features` (the part `layout` describes), same indices, so its weights load."""
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors or a torch.save file (tensors only: weights_only)."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


class VGG16Features(nn.Module):
    """Returns the pool1, pool2 and pool3 feature maps of an RGB image in [0, 1] (no ImageNet normalisation,
    as in the official RFR-Net loss). Parameters are frozen."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_layers(_VGG16_TO_POOL3)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # always frozen: no dropout/BN here, but keep the intent explicit

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        outputs, start = [], 0
        x = image
        for end in _POOL_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outputs.append(x)
            start = end
        return outputs

    def load_weights(self, path: str | os.PathLike) -> VGG16Features:
        """Load torchvision-format VGG16 weights from a .pth (torch.save) or .safetensors file; strict on the
        layers used here, extra keys (deeper layers, classifier) are ignored."""
        state_dict = read_state_dict(path)
        wanted = {f"features.{i}.{p}" for i in VGG16_CONV_INDICES for p in ("weight", "bias")}
        missing = sorted(wanted - state_dict.keys())
        if missing:
            raise ValueError(f"{path} is not a VGG16 state dict in torchvision format: missing {missing}")
        self.load_state_dict({k: state_dict[k] for k in wanted}, strict=True)
        return self


def load_vgg16_features(path: str | os.PathLike | None = None, allow_random: bool = False) -> VGG16Features:
    """VGG16 features with ImageNet weights: from `path`, else torchvision's `vgg16-397923af.pth` from the torch hub
    cache, downloaded there when online (offline, with HF_HUB_OFFLINE=1, only the cache is read). Random weights
    only when `allow_random` (timing, smoke tests); otherwise a missing file is an error."""
    model = VGG16Features()
    if path is not None:
        return model.load_weights(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_VGG16_URL).name
    try:
        if not cached.is_file():
            if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
                raise FileNotFoundError(f"{cached} is not cached and HF_HUB_OFFLINE is set")
            torch.hub.load_state_dict_from_url(TORCHVISION_VGG16_URL, map_location="cpu", progress=False)
        return model.load_weights(cached)
    except Exception as err:
        if allow_random:
            return model
        raise RuntimeError(
            "could not get the VGG16 weights of the perceptual/style losses "
            f"({type(err).__name__}: {err}). Offline, run scripts/prepare_vgg16.py and pass its output file."
        ) from err
