"""The training loss equals the official formula (tests/official_reference.py) and hand-computed values."""

import pytest
import torch

from rfr_pipeline.losses import InpaintingLoss, LossWeights, gram_matrix, total_variation
from rfr_pipeline.vgg import VGG16Features
from tests.official_reference import official_generator_loss

pytestmark = pytest.mark.numerics  # .ci/run repeats these on the AVX2 kernels


def test_matches_the_official_formula():
    torch.manual_seed(0)
    vgg = VGG16Features()
    target, output = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    known = (torch.rand(2, 1, 32, 32) > 0.4).float()
    ours = InpaintingLoss(vgg)(output, target, known)["loss"]
    official = official_generator_loss(vgg, target, known.repeat(1, 3, 1, 1), output)
    torch.testing.assert_close(ours, official, rtol=1e-6, atol=0)


def test_hand_computed_terms():
    vgg = VGG16Features()
    for p in vgg.parameters():
        torch.nn.init.zeros_(p)  # features are all zero: perceptual and style vanish
    target = torch.full((1, 3, 8, 8), 0.5)
    output = torch.full((1, 3, 8, 8), 0.25)
    known = torch.ones(1, 1, 8, 8)
    known[..., :4] = 0  # left half is the hole
    terms = InpaintingLoss(vgg)(output, target, known)
    assert terms["valid"].item() == pytest.approx(0.125)  # |0.5 - 0.25| on half of the pixels
    assert terms["hole"].item() == pytest.approx(0.125)
    assert terms["perceptual"].item() == 0 and terms["style"].item() == 0
    # comp·hole is 0.25 on the left half, 0 on the right: one jump of 0.25 per row among 7 horizontal steps.
    assert terms["tv"].item() == pytest.approx(0.25 / 7)
    assert terms["loss"].item() == pytest.approx(0.125 + 6 * 0.125 + 0.1 * 0.25 / 7)


def test_gram_and_total_variation_by_hand():
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    torch.testing.assert_close(gram_matrix(x), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]))
    y = torch.tensor([[[[0.0, 1.0], [3.0, 1.0]]]])
    assert total_variation(y).item() == pytest.approx((3 + 0) / 2 + (1 + 2) / 2)


def test_gradients_reach_the_output_only():
    vgg = VGG16Features()
    output = torch.rand(1, 3, 16, 16, requires_grad=True)
    InpaintingLoss(vgg)(output, torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16))["loss"].backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_pixel_losses_alone_run_no_vgg():
    torch.manual_seed(0)
    target, output = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    known = (torch.rand(2, 1, 32, 32) > 0.4).float()
    pixels_only = LossWeights(perceptual=0, style=0)
    full = InpaintingLoss(VGG16Features())(output, target, known)
    terms = InpaintingLoss(None, pixels_only)(output, target, known)
    for name in ("valid", "hole", "tv"):
        torch.testing.assert_close(terms[name], full[name])
    assert terms["perceptual"].item() == 0 and terms["style"].item() == 0
    torch.testing.assert_close(terms["loss"], full["valid"] + 6 * full["hole"] + 0.1 * full["tv"])
    with pytest.raises(ValueError, match="need a VGG16"):
        InpaintingLoss(None)


def test_the_ssim_term_is_one_minus_the_ssim_of_the_composite():
    torch.manual_seed(0)
    target, output = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32, requires_grad=True)
    known = (torch.rand(2, 1, 32, 32) > 0.4).float()
    with_ssim = LossWeights(perceptual=0, style=0, ssim=2.0)
    terms = InpaintingLoss(None, with_ssim)(output, target, known)
    from torchmetrics.functional.image import structural_similarity_index_measure

    comp = output * (1 - known) + target * known
    torch.testing.assert_close(terms["ssim"], 1 - structural_similarity_index_measure(comp, target, data_range=1.0))
    assert 0 < terms["ssim"].item() < 1
    plain = InpaintingLoss(None, LossWeights(perceptual=0, style=0))(output, target, known)
    torch.testing.assert_close(terms["loss"], plain["loss"] + 2.0 * terms["ssim"])
    (grad,) = torch.autograd.grad(terms["ssim"], output)  # differentiable, through the hole only
    assert grad[(known == 1).expand_as(output)].abs().max() == 0 and grad.abs().sum() > 0
    perfect = InpaintingLoss(None, with_ssim)(target, target, known)["ssim"]
    assert abs(perfect.item()) < 1e-6
