"""RFR-Net: Recurrent Feature Reasoning for Image Inpainting (Li et al., CVPR 2020).

The network reproduces the official implementation (jingyuanli001/RFR-Inpainting @ e1cad6a) number for number,
because that code, not the paper's prose, is what the released weights were trained with. Where the two differ
(the Knowledge Consistent Attention) the comments say so.

Shape of the network (H×W input, H and W multiples of 16):

    stem         two partial convolutions, H/2                                   (official: Pconv1/bn1, Pconv2/bn20)
    recurrence   ×6, shared weights:                                                     (Pconv21, Pconv22, bn2)
                   area identification: two partial convs grow the known region
                   feature reasoning:   an encoder-decoder with attention fills it                     (RFRModule)
    merge        adaptive average of the 7 stored feature maps, each over its own known region
    tail         transposed conv back to H, partial conv on [image, features], bottleneck, output conv

Implementation choices that keep the numbers identical to the official code but make it faster or safer:
  * partial convolutions update their mask on one channel (all mask channels are equal; half the FLOPs),
  * the attention runs over the whole batch at once, and its memory between iterations is passed along
    explicitly instead of living on the module (no state survives a call, so threads can share a model),
  * CPU inference runs the 7×7 partial convolutions through the FFT and the transposed convolutions in one of four
    forms, wherever that is faster on the machine at hand (cpu_forms.py; the same arithmetic, reordered).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .cpu_forms import FastConv2d, FastConvTranspose2d, exporting

# The network downsamples four times (stem stride 2, then three stride-2 encoders).
SIZE_MULTIPLE = 16


class PartialConv2d(FastConv2d):
    """Partial convolution (Liu et al. 2018), multi-channel variant without bias, as in the official code.

    For input x and mask m, with S = C_in·k·k:
        u = Σ_window m (over all input channels),   ratio = S / (u + 1e-8) · clamp(u, 0, 1),
        y = conv(x·m, W) · ratio,                    new mask = clamp(u, 0, 1).

    All input channels share one mask (or a few groups of channels share one each), so u is computed on one mask
    channel per group: C_in·Σ_window m instead of a C_out×C_in convolution. The mask arithmetic runs in float32
    whatever the feature dtype: window counts must stay exact integers. conv(x·m, W) is `FastConv2d`'s: PyTorch's
    own, or during CPU inference the FFT where that is faster (cpu_forms.py).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.window_size = in_channels * kernel_size * kernel_size

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, group_sizes: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`mask` is (B, 1, H, W), shared by all input channels, or (B, G, H, W) with mask g covering the next
        `group_sizes[g]` input channels (the tail's [image, features] input). Returns (output, new 1-channel mask)."""
        sizes = tuple(group_sizes) if group_sizes is not None else (self.in_channels,)
        with torch.no_grad():
            # Σ over channels and window of the mask = Σ_g (channels in group g) · (window sum of mask g).
            counts = torch.tensor(sizes, dtype=torch.float32, device=mask.device).view(1, -1, 1, 1)
            window = F.conv2d(mask, counts.expand(1, -1, *self.kernel_size), stride=self.stride, padding=self.padding)
            window = window.round_()  # exact integer counts, whatever algorithm the backend picked
            new_mask = window.clamp(0, 1)
            ratio = (self.window_size / (window + 1e-8) * new_mask).to(x.dtype)
        if len(sizes) > 1:  # each group of channels times its own mask
            groups = x.split(sizes, dim=1)
            x = torch.cat([g * mask[:, i : i + 1].to(x.dtype) for i, g in enumerate(groups)], dim=1)
        else:
            x = x * mask.to(x.dtype)
        y = super().forward(x)
        return y * ratio, new_mask


class ConvNormAct(nn.Sequential):
    """Convolution (no bias) → BatchNorm → activation; indices 0 and 1 match the official state dict."""

    def __init__(self, conv: nn.Module, channels: int, negative_slope: float | None):
        act = nn.ReLU(inplace=True) if negative_slope is None else nn.LeakyReLU(negative_slope, inplace=True)
        super().__init__(conv, nn.BatchNorm2d(channels), act)


class UpConv(FastConvTranspose2d):
    """Transposed convolution, kernel 4, stride 2, padding 1 (doubles H and W), no bias: the official
    `nn.ConvTranspose2d(C_in, C_out, 4, 2, 1, bias=False)`, in a faster form during CPU inference (cpu_forms.py)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels)


def _box_sum_3x3(x: torch.Tensor) -> torch.Tensor:
    """Zero-padded 3×3 sum over the last two dims of (B, C, h, w) (official: avg_pool2d(3, 1, 1) · 9), as a depthwise
    convolution with a kernel of ones: the same 9-term sums, several times faster forward and backward."""
    if exporting():  # the official form: ONNX's Conv needs a fixed group count, and AveragePool runs fast
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True) * 9
    channels = x.shape[1]
    return F.conv2d(x, x.new_ones(channels, 1, 3, 3), padding=1, groups=channels)


class AttentionMemory(NamedTuple):
    """What one Knowledge Consistent Attention call hands to the next iteration."""

    scores: torch.Tensor  # (B, N_keys, h, w) attention scores after blending
    mask: torch.Tensor  # (B, 1, h, w) known mask at the attention's resolution


class KnowledgeConsistentAttention(nn.Module):
    """Knowledge Consistent Attention, with the official code's arithmetic (the paper's text differs on four points):

    1. keys are normalised after adding 1e-7 to every element; queries are **not** normalised (paper: cosine);
    2. scores are summed (not averaged) over a zero-padded 3×3 neighbourhood of query positions;
    3. from the second iteration on, scores blend with the previous iteration's as
       (s_prev·m_prev + s·(|ratio|+1e-7)) / (m_prev + |ratio| + 1e-7)  (paper: λ·s + (1-λ)·s_prev);
    4. the output mixes the **normalised** key features (paper: raw features).
    Followed by a 1×1 combiner (the only biased layer of the generator) over [attention output, input].

    The two products run as grouped 1×1 convolutions (one group per sample) on the CPU, as the official code's
    per-sample convolutions do (oneDNN runs them about 1.7× faster than bmm), and as bmm elsewhere;
    `matmul_backend="conv"` or `"bmm"` forces one.
    """

    def __init__(self, channels: int, matmul_backend: str | None = None):
        super().__init__()
        if matmul_backend not in (None, "conv", "bmm"):
            raise ValueError(f'matmul_backend must be None (by device), "conv" or "bmm"; got {matmul_backend!r}')
        self.matmul_backend = matmul_backend
        self.ratio = nn.Parameter(torch.ones(1))
        self.combiner = nn.Conv2d(2 * channels, channels, kernel_size=1)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, memory: AttentionMemory | None
    ) -> tuple[torch.Tensor, AttentionMemory]:
        # Softmax over large unnormalised logits: keep the attention in float32 under autocast and half models alike.
        with torch.autocast(device_type=features.device.type, enabled=False):
            attended, memory = self._attend(features, mask, memory)
        return self.combiner(torch.cat([attended, features], dim=1)), memory

    def _attend(
        self, features: torch.Tensor, mask: torch.Tensor, memory: AttentionMemory | None
    ) -> tuple[torch.Tensor, AttentionMemory]:
        b, c, h, w = features.shape
        n = h * w
        mask = F.interpolate(mask, size=(h, w), mode="nearest")
        compute_dtype = torch.promote_types(features.dtype, torch.float32)
        queries = features.to(compute_dtype)
        keys = queries.flatten(2) + 1e-7  # (B, C, N): every position is a key
        keys = keys / keys.square().sum(dim=1, keepdim=True).sqrt()
        scores = self._keys_dot_queries(keys, queries).view(b, n, h, w)  # scores[b, key j, query p]
        scores = _box_sum_3x3(scores)
        if exporting():  # written out: onnxruntime's Softmax over a middle axis transposes around it, 5× slower
            scores = (scores - scores.amax(dim=1, keepdim=True)).exp()
            scores = scores / scores.sum(dim=1, keepdim=True)
        else:
            scores = scores.softmax(dim=1)
        if memory is not None:
            # (s_prev·m_prev + s·r) / (m_prev + r), with the per-position fractions formed on the small mask first
            weight = self.ratio.abs().to(compute_dtype) + 1e-7
            denominator = memory.mask + weight
            scores = memory.scores * (memory.mask / denominator) + scores * (weight / denominator)
        attended = self._mix_keys(keys, scores).view(b, c, h, w).to(features.dtype)  # Σ_j scores[j, p] · key_j
        return attended, AttentionMemory(scores, mask.to(compute_dtype))

    def _use_conv(self, x: torch.Tensor) -> bool:
        if self.matmul_backend is None:
            return x.device.type == "cpu" and not exporting()  # (one group per sample: not with a dynamic batch)
        return self.matmul_backend == "conv"

    def _keys_dot_queries(self, keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        b, c, n = keys.shape
        if self._use_conv(keys):
            filters = keys.transpose(1, 2).reshape(b * n, c, 1, 1)
            return F.conv2d(queries.reshape(1, b * c, *queries.shape[2:]), filters, groups=b)
        return torch.bmm(keys.transpose(1, 2), queries.flatten(2))

    def _mix_keys(self, keys: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        b, c, n = keys.shape
        if self._use_conv(keys):
            return F.conv2d(scores.reshape(1, b * n, *scores.shape[2:]), keys.reshape(b * c, n, 1, 1), groups=b)
        return torch.bmm(keys, scores.reshape(b, n, n))


class FeatureReasoning(nn.Module):
    """The official `RFRModule`: a 6-level encoder, 5 decoders with skip connections, attention after the third."""

    def __init__(self, channels: int, widths: Sequence[int]):
        super().__init__()
        w1, w2, w3 = widths
        strided = lambda cin, cout: nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        dilated = lambda cin, cout: nn.Conv2d(cin, cout, 3, 1, 2, dilation=2, bias=False)
        self.encoders = nn.ModuleList(
            [
                ConvNormAct(strided(channels, w1), w1, None),  # H/4
                ConvNormAct(strided(w1, w2), w2, None),  # H/8
                ConvNormAct(strided(w2, w3), w3, None),  # H/16
                ConvNormAct(dilated(w3, w3), w3, None),
                ConvNormAct(dilated(w3, w3), w3, None),
                ConvNormAct(dilated(w3, w3), w3, None),
            ]
        )
        # Decoder k takes [previous output, encoder output of the mirrored level].
        self.decoders = nn.ModuleList(
            [
                ConvNormAct(dilated(2 * w3, w3), w3, 0.2),  # official dec_5, H/16
                ConvNormAct(dilated(2 * w3, w3), w3, 0.2),  # dec_4, H/16
                ConvNormAct(UpConv(2 * w3, w3), w3, 0.2),  # dec_3, H/8, then attention
                ConvNormAct(UpConv(w3 + w2, w2), w2, 0.2),  # dec_2, H/4
                ConvNormAct(UpConv(w2 + w1, channels), channels, 0.2),  # dec_1, H/2
            ]
        )
        self.attention = KnowledgeConsistentAttention(w3)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, memory: AttentionMemory | None
    ) -> tuple[torch.Tensor, AttentionMemory]:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the deepest encoder output is the decoders' first input, not a skip
        for i, decoder in enumerate(self.decoders):
            x = decoder(torch.cat([x, skips.pop()], dim=1))
            if i == 2:
                x, memory = self.attention(x, mask, memory)
        return x, memory


class Bottleneck(nn.Module):
    """ResNet bottleneck with expansion 4 (the official `tail2`): 1×1 → 3×3 → 1×1, residual, ReLU."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.norm3 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)), inplace=True)
        y = F.relu(self.norm2(self.conv2(y)), inplace=True)
        y = self.norm3(self.conv3(y))
        return F.relu(y + x, inplace=True)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_config(**config) -> None:
    """ValueError naming the field, for a value RFRNet cannot be built from (a hand-edited config.json, say)."""
    for name, value in config.items():
        if name == "reasoning_channels":
            if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(map(_is_count, value)):
                raise ValueError(f"reasoning_channels must be three positive integers (the widths at H/4, H/8, "
                                 f"H/16), got {value!r}")
        elif not _is_count(value):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config["trunk_kernel_size"] % 2 != 1:
        raise ValueError(f"trunk_kernel_size must be odd, got {config['trunk_kernel_size']}")


@torch.no_grad()
def known_regions(known_mask: torch.Tensor, trunk_kernel_size: int, num_iterations: int) -> list[torch.Tensor]:
    """The region RFR-Net has reasoned about after its stem and after each recurrent iteration (the paper's area
    identification), for a (B, 1, H, W) known mask (1 = known): `num_iterations + 1` masks of that shape, 1 =
    reached. The last is the region `RFRNet.forward`'s prediction rests on: a hole pixel outside it gets no features
    at all (the merge divides nothing by almost nothing) and comes back dark, so the pipeline sizes its windows to
    leave none out. Only the partial convolutions' mask updates, as max pooling (for a binary mask, the max over a
    window is clamp(window count, 0, 1)): milliseconds at any size."""
    k = trunk_kernel_size
    mask = F.max_pool2d(known_mask.float(), 7, 2, 3)  # stem_conv1: 7×7, stride 2
    mask = F.max_pool2d(mask, k, 1, k // 2)  # stem_conv2
    regions = [mask]
    for _ in range(num_iterations):  # area identification: area_conv1, area_conv2
        mask = F.max_pool2d(F.max_pool2d(mask, k, 1, k // 2), k, 1, k // 2)
        regions.append(mask)
    return [F.interpolate(region, scale_factor=2.0, mode="nearest") for region in regions]


class RFRNet(ModelMixin, ConfigMixin):
    r"""The RFR-Net generator.

    Defaults give the published network (31,224,065 parameters). `trunk_kernel_size=5` gives the official
    "smaller hole" variant; smaller `trunk_channels`/`reasoning_channels` give narrow models (tests, CPU training).
    `sample_size` records the resolution the weights were trained at (the network itself accepts any multiple of 16);
    the pipeline sizes its work from it.

    Call it as `model(image, known_mask)`:
      * `image` (B, 3, H, W), RGB in [0, 1], no normalisation; H and W multiples of 16. Pixels inside the hole may hold
        anything (even NaN): they never reach the network.
      * `known_mask` (B, 1, H, W) or (B, 3, H, W) with identical channels: 1 = known pixel, 0 = hole.
    It returns the raw prediction (B, 3, H, W), neither clamped nor composited: the caller composites
    `output * hole + image * known`, as the official code does.

    Training: `train()`/`eval()` as for any module. The official recipe ends with a fine-tune phase in which every
    BatchNorm layer keeps its running statistics (eval mode) while its affine parameters still train: call
    `enable_finetune_mode()`; it survives later `train()` calls until `disable_finetune_mode()`.
    """

    _supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """diffusers' loader; a local folder it cannot load gets an error naming the file and what is wrong with it
        (a bad config value, a truncated or corrupt weights file) instead of diffusers' generic one."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except (OSError, ValueError, TypeError) as err:
            folder = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
            problem = _find_folder_problem(folder) if folder.is_dir() else None
            if problem is None:
                raise
            raise ValueError(problem) from err

    @register_to_config
    def __init__(
        self,
        trunk_channels: int = 64,
        trunk_kernel_size: int = 7,
        reasoning_channels: Sequence[int] = (128, 256, 512),
        num_iterations: int = 6,
        tail_channels: int = 32,
        tail_bottleneck_channels: int = 8,
        sample_size: int = 256,
    ):
        super().__init__()
        check_config(trunk_channels=trunk_channels, trunk_kernel_size=trunk_kernel_size,
                     reasoning_channels=reasoning_channels, num_iterations=num_iterations, tail_channels=tail_channels,
                     tail_bottleneck_channels=tail_bottleneck_channels, sample_size=sample_size)
        c, k = trunk_channels, trunk_kernel_size
        self.stem_conv1 = PartialConv2d(3, c, 7, stride=2, padding=3)
        self.stem_norm1 = nn.BatchNorm2d(c)
        self.stem_conv2 = PartialConv2d(c, c, k, padding=k // 2)
        self.stem_norm2 = nn.BatchNorm2d(c)
        # Area identification: grows the known region a little in every recurrence.
        self.area_conv1 = PartialConv2d(c, c, k, padding=k // 2)
        self.area_conv2 = PartialConv2d(c, c, k, padding=k // 2)
        self.area_norm = nn.BatchNorm2d(c)
        self.feature_reasoning = FeatureReasoning(c, reasoning_channels)
        self.upsample_conv = UpConv(c, c)
        self.upsample_norm = nn.BatchNorm2d(c)
        self.tail_conv = PartialConv2d(3 + c, tail_channels, 3, padding=1)
        self.tail_bottleneck = Bottleneck(tail_channels, tail_bottleneck_channels)
        self.out_conv = nn.Conv2d(2 * tail_channels, 3, 3, padding=1, bias=False)
        self._finetune_mode = False

    # -- training modes ---------------------------------------------------------------------------------------------

    @property
    def finetune_mode(self) -> bool:
        return self._finetune_mode

    def enable_finetune_mode(self) -> RFRNet:
        """Official fine-tune phase: every BatchNorm layer stays in eval mode (running statistics frozen) while its
        affine parameters keep training. Persists across `train()` calls."""
        self._finetune_mode = True
        return self.train(self.training)

    def disable_finetune_mode(self) -> RFRNet:
        self._finetune_mode = False
        return self.train(self.training)

    def train(self, mode: bool = True) -> RFRNet:
        super().train(mode)
        if mode and self._finetune_mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    # -- forward ----------------------------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor, known_mask: torch.Tensor, on_iteration=None) -> torch.Tensor:
        """`on_iteration(iteration, region)`, if given, is called after each recurrent iteration (0, 1, …) with the
        region reasoned about so far, (B, 1, H, W), 1 = reached (what `known_regions` computes without the network):
        how the hole closes, for progress bars, callbacks and pictures. It changes nothing else."""
        known = self._check_inputs(image, known_mask)
        image = image.to(self.dtype)
        # `where`, not a product: hole pixels may hold NaN/inf, and must not reach the network.
        masked_image = torch.where(known.bool(), image, torch.zeros((), dtype=image.dtype, device=image.device))

        x, mask = self.stem_conv1(masked_image, known)
        x = F.relu(self.stem_norm1(x), inplace=True)
        x, mask = self.stem_conv2(x, mask)
        x = F.relu(self.stem_norm2(x), inplace=True)

        # The merge averages every stored map over its own known region; keep running sums instead of a stack.
        weighted_sum, mask_sum = x * mask.to(x.dtype), mask.clone()
        memory = None
        for iteration in range(self.config.num_iterations):
            x, mask = self.area_conv1(x, mask)
            x, mask = self.area_conv2(x, mask)
            x = F.leaky_relu(self.area_norm(x), inplace=True)
            x, memory = self.feature_reasoning(x, mask, memory)
            x = x * mask.to(x.dtype)
            weighted_sum = weighted_sum + x  # x is already masked by its own mask
            mask_sum = mask_sum + mask
            if on_iteration is not None:
                on_iteration(iteration, F.interpolate(mask, scale_factor=2.0, mode="nearest"))
        # Official: mean over the 7 maps of x·m, divided by (mean of m + 1e-7).
        stored = self.config.num_iterations + 1
        x = (weighted_sum / stored) / (mask_sum / stored + 1e-7).to(x.dtype)

        x = F.leaky_relu(self.upsample_norm(self.upsample_conv(x)), inplace=True)
        tail_mask = torch.cat([known, F.interpolate(mask, scale_factor=2.0, mode="nearest")], dim=1)
        x, _ = self.tail_conv(torch.cat([masked_image, x], dim=1), tail_mask, group_sizes=(3, x.shape[1]))
        x = F.leaky_relu(x, inplace=True)
        x = torch.cat([x, self.tail_bottleneck(x)], dim=1)
        return self.out_conv(x)

    def known_regions(self, known_mask: torch.Tensor) -> list[torch.Tensor]:
        """Where the network has reasoned after its stem and after each recurrent iteration: `known_regions` (the
        module's function) for this network's configuration."""
        known = self._check_inputs(torch.zeros(known_mask.shape[0], 3, *known_mask.shape[2:],
                                               device=known_mask.device), known_mask)
        return known_regions(known, self.config.trunk_kernel_size, self.config.num_iterations)

    _check_values = True

    @contextmanager
    def value_checks(self, enabled: bool):
        """Within the block, `forward` checks input values (binary mask, finite known pixels) only if `enabled`.
        Those checks read tensors back to the host; a training loop whose data guarantees them may skip them.
        Shape checks always run."""
        previous, self._check_values = self._check_values, enabled
        try:
            yield self
        finally:
            self._check_values = previous

    def _check_inputs(self, image: torch.Tensor, known_mask: torch.Tensor) -> torch.Tensor:
        """Validate the inputs; return the known mask as (B, 1, H, W) float32."""
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image must be a (B, 3, H, W) tensor (RGB in [0, 1]), got {shape}")
        if not image.is_floating_point():
            raise ValueError(f"image must be a floating-point tensor in [0, 1], got dtype {image.dtype}")
        b, _, h, w = image.shape
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or h == 0 or w == 0:
            raise ValueError(
                f"image height and width must be positive multiples of {SIZE_MULTIPLE}, got {h}×{w}; "
                "pad or resize first (RFRInpaintPipeline does this for you)"
            )
        if (
            not isinstance(known_mask, torch.Tensor)
            or known_mask.ndim != 4
            or known_mask.shape[1] not in (1, 3)
            or known_mask.shape[0] != b
            or known_mask.shape[2:] != image.shape[2:]
        ):
            shape = tuple(known_mask.shape) if isinstance(known_mask, torch.Tensor) else type(known_mask).__name__
            raise ValueError(f"known_mask must be a ({b}, 1, {h}, {w}) or ({b}, 3, {h}, {w}) tensor, got {shape}")
        if known_mask.device != image.device:
            raise ValueError(f"image is on {image.device} but known_mask is on {known_mask.device}")
        known = known_mask.to(torch.float32)
        if known.shape[1] == 3:
            if self._check_values and not torch.equal(known[:, :1].expand_as(known), known):
                raise ValueError("a 3-channel known_mask must have identical channels (one mask for all colours)")
            known = known[:, :1]
        if not self._check_values:
            return known
        if not torch.all((known == 0) | (known == 1)):
            raise ValueError("known_mask must be binary: 1 = known pixel, 0 = hole")
        if not torch.all(torch.isfinite(image) | (known == 0)):
            raise ValueError("image holds NaN or infinite values outside the hole")
        return known


def _find_folder_problem(folder: Path) -> str | None:
    """What makes a saved RFRNet folder unloadable, as a sentence naming the file; None if nothing is found."""
    from safetensors import SafetensorError, safe_open

    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text())
        defaults = {name: parameter.default for name, parameter in inspect.signature(RFRNet.__init__).parameters.items()
                    if parameter.default is not inspect.Parameter.empty}
        check_config(**{**defaults, **{k: v for k, v in config.items() if k in defaults}})
    except FileNotFoundError:
        return f"{config_file} is missing: {folder} is not a saved RFRNet"
    except json.JSONDecodeError as err:
        return f"{config_file} is not valid JSON ({err})"
    except (TypeError, ValueError) as err:
        return f"{config_file}: {err}"
    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt") as f:
                f.keys()
        except SafetensorError as err:
            return (f"{weights} is not a readable safetensors file ({err}); it is probably truncated or corrupt "
                    "(an interrupted download or copy): download or save it again")
    return None
