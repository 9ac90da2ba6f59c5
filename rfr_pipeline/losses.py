"""RFR-Net's training loss, exactly as the official code computes it.

    comp = out·hole + gt·known
    total = 1·valid + 6·hole + 0.05·perceptual + 120·style + 0.1·tv

valid/hole: mean over all elements of |gt − out| masked; perceptual: Σ over pool1..3 of mean|φ(gt) − φ(x)| for
x in (out, comp); style: the same on Gram matrices, mean|G(gt) − G(x)| / (C·H·W) with G = φφᵀ per sample;
tv: mean |vertical| + mean |horizontal| differences of comp·hole.

An optional term not in the paper, ssim = 1 − SSIM(comp, gt) (torchmetrics: Gaussian window 11, σ 1.5), weighted 0
by default, rewards fills whose local structure and contrast match the truth, as the SSIM metric measures them.

The weights are the paper's by default. With perceptual and style weighted 0 the VGG16 is not needed (and not run):
pixel losses alone favour the fill closest to the truth on average, which PSNR, SSIM and L1 reward, over the
plausible texture that the VGG terms ask for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .vgg import VGG16Features


@dataclass(frozen=True)
class LossWeights:
    valid: float = 1.0
    hole: float = 6.0
    perceptual: float = 0.05
    style: float = 120.0
    tv: float = 0.1
    ssim: float = 0.0  # not in the paper

    @property
    def uses_vgg(self) -> bool:
        return bool(self.perceptual or self.style)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """φφᵀ per sample, (B, C, C); computed in float32, autocast or not (the sums overflow half precision)."""
    flat = features.flatten(2).float()
    with torch.autocast(device_type=flat.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2))


def structural_similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images in [0, 1], differentiable (torchmetrics, the `[train]` extra)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x, y, data_range=1.0)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()


class InpaintingLoss(torch.nn.Module):
    """Returns a dict of the weighted total (`loss`) and each unweighted term (for logging)."""

    def __init__(self, vgg: VGG16Features | None, weights: LossWeights = LossWeights()):
        super().__init__()
        if vgg is None and weights.uses_vgg:
            raise ValueError("the perceptual and style terms need a VGG16: pass one, or weight both terms 0")
        self.vgg = vgg if weights.uses_vgg else None
        self.weights = weights

    def forward(self, output: torch.Tensor, target: torch.Tensor, known_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        known = known_mask.to(output.dtype)
        hole = 1 - known
        comp = output * hole + target * known
        error = (target - output).abs()
        terms = {"valid": (error * known).mean(), "hole": (error * hole).mean()}

        if self.vgg is not None:
            terms["perceptual"], terms["style"] = self.vgg_terms(output, comp, target)
        else:
            terms["perceptual"] = terms["style"] = output.new_zeros((), dtype=torch.float32)
        terms["tv"] = total_variation(comp * hole)
        terms["ssim"] = 1 - structural_similarity(comp.float(), target.float()) if self.weights.ssim else \
            output.new_zeros((), dtype=torch.float32)

        w = self.weights
        terms["loss"] = (
            w.valid * terms["valid"]
            + w.hole * terms["hole"]
            + w.perceptual * terms["perceptual"]
            + w.style * terms["style"]
            + w.tv * terms["tv"]
            + w.ssim * terms["ssim"]
        )
        return terms

    def vgg_terms(self, output, comp, target) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted perceptual and style terms."""
        with torch.no_grad():
            target_features = self.vgg(target.to(output.dtype))
            target_grams = [gram_matrix(phi) for phi in target_features]
        perceptual = output.new_zeros((), dtype=torch.float32)
        style = output.new_zeros((), dtype=torch.float32)
        for x in (output, comp):
            for phi_target, gram_target, phi in zip(target_features, target_grams, self.vgg(x)):
                c, h, w = phi.shape[1:]
                perceptual = perceptual + (phi_target - phi).abs().float().mean()
                style = style + ((gram_target - gram_matrix(phi)).abs() / (c * h * w)).mean()
        return perceptual, style
