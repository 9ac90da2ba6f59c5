"""Load checkpoints of the official RFR-Net code (jingyuanli001/RFR-Inpainting) into `RFRNet`.

Official checkpoint files are `torch.save`d dicts `{'n_iter': int, 'generator': state_dict, 'optimizer_G': ...}`,
often saved from CUDA. Loading is strict: any missing, unexpected or mis-shaped tensor is an error that lists them,
never a model that silently runs with random weights (the official loader's `strict=False` inside a bare `except`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch

from .modeling_rfr import RFRNet

# (official name pattern, our name) — applied in order, first match wins; \1 etc. refer to the pattern's groups.
_RENAMES: list[tuple[str, str]] = [
    (r"Pconv1\.", "stem_conv1."),
    (r"bn1\.", "stem_norm1."),
    (r"Pconv2\.", "stem_conv2."),
    (r"bn20\.", "stem_norm2."),
    (r"Pconv21\.", "area_conv1."),
    (r"Pconv22\.", "area_conv2."),
    (r"bn2\.", "area_norm."),
    (r"RFRModule\.enc_([1-6])\.", "feature_reasoning.encoders.{enc}."),
    (r"RFRModule\.dec_([1-5])\.", "feature_reasoning.decoders.{dec}."),
    (r"RFRModule\.att\.att\.ratio", "feature_reasoning.attention.ratio"),
    (r"RFRModule\.att\.combiner\.", "feature_reasoning.attention.combiner."),
    (r"Tconv\.", "upsample_conv."),
    (r"bn3\.", "upsample_norm."),
    (r"tail1\.", "tail_conv."),
    (r"tail2\.conv([1-3])\.", "tail_bottleneck.conv{n}."),
    (r"tail2\.bn([1-3])\.", "tail_bottleneck.norm{n}."),
    (r"out\.", "out_conv."),
]


def official_to_diffusers_key(name: str) -> str:
    """Our parameter name for an official state-dict name; raises KeyError for names the official model lacks."""
    for pattern, replacement in _RENAMES:
        match = re.match(pattern, name)
        if match is None:
            continue
        number = match.group(1) if match.groups() else None
        new_prefix = replacement.format(
            enc=int(number) - 1 if number else None,
            dec=5 - int(number) if number else None,  # official dec_5 runs first
            n=number,
        )
        return new_prefix + name[match.end() :]
    raise KeyError(name)


def _extract_state_dict(checkpoint: str | os.PathLike | Mapping) -> Mapping[str, torch.Tensor]:
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"official RFR-Net checkpoint not found: {path}")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for non-checkpoint files
            raise ValueError(
                f"{path} is not a PyTorch checkpoint that loads safely ({type(err).__name__}: {err}); expected an "
                "official RFR-Net checkpoint saved with torch.save ({'generator': state_dict, ...} or a state dict)"
            ) from err
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    state_dict = checkpoint.get("generator", checkpoint)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(
            "the checkpoint holds no RFR-Net state dict: expected {'generator': {name: tensor}, ...} "
            f"or a bare {{name: tensor}} dict; top-level keys: {sorted(checkpoint)[:10]}"
        )
    # DataParallel checkpoints prefix every name with "module.".
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def config_from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """The `RFRNet` config whose shapes match an official state dict (detects the "smaller hole" 5×5 variant)."""
    try:
        trunk = state_dict["Pconv2.weight"]
        widths = [state_dict[f"RFRModule.enc_{i}.0.weight"].shape[0] for i in (1, 2, 3)]
        tail = state_dict["tail1.weight"].shape[0]
        bottleneck = state_dict["tail2.conv1.weight"].shape[0]
    except KeyError as err:
        raise ValueError(f"not an official RFR-Net generator state dict: it has no {err.args[0]!r}") from err
    return {
        "trunk_channels": trunk.shape[0],
        "trunk_kernel_size": trunk.shape[-1],
        "reasoning_channels": widths,
        "tail_channels": tail,
        "tail_bottleneck_channels": bottleneck,
    }


def load_official_checkpoint(checkpoint: str | os.PathLike | Mapping, dtype: torch.dtype = torch.float32) -> RFRNet:
    """Build an `RFRNet` (eval mode) from an official RFR-Net checkpoint: a file path or an already loaded dict,
    either `{'generator': state_dict, ...}` or a bare state dict. Strict: mismatches raise a `ValueError` listing them.
    """
    state_dict = _extract_state_dict(checkpoint)
    model = RFRNet(**config_from_official_state_dict(state_dict))
    expected = model.state_dict()

    converted, unexpected = {}, []
    for name, tensor in state_dict.items():
        try:
            converted[official_to_diffusers_key(name)] = tensor
        except KeyError:
            unexpected.append(name)
    unexpected += [name for name in converted if name not in expected]
    missing = [name for name in expected if name not in converted]
    mismatched = [
        f"{name}: checkpoint {tuple(converted[name].shape)} vs model {tuple(expected[name].shape)}"
        for name in expected
        if name in converted and converted[name].shape != expected[name].shape
    ]
    if unexpected or missing or mismatched:
        problems = []
        for title, names in (("unexpected", unexpected), ("missing", missing), ("shape mismatch", mismatched)):
            if names:
                problems.append(f"{title} ({len(names)}): " + ", ".join(names[:20]) + (" ..." if len(names) > 20 else ""))
        raise ValueError("official checkpoint does not match RFR-Net:\n  " + "\n  ".join(problems))

    model.load_state_dict({name: converted[name].to("cpu") for name in expected}, strict=True)
    if dtype != torch.float32:
        model = model.to(dtype=dtype)
    return model.eval()
