"""The fast layer implementations compute what the plain PyTorch / official formulations compute."""

import json

import pytest
import torch
import torch.nn.functional as F

from rfr_pipeline.modeling_rfr import KnowledgeConsistentAttention, PartialConv2d, UpConv, _box_sum_3x3
from tests.conftest import assert_equal_up_to_rounding
from tests.official_reference import OfficialPartialConv2d

pytestmark = pytest.mark.numerics  # .ci/run repeats these on the AVX2 kernels


@pytest.mark.parametrize("in_channels", [8, 1024])
def test_upconv_every_form_equals_conv_transpose(in_channels):
    torch.manual_seed(0)
    layer = UpConv(in_channels, 16)
    x = torch.randn(2, in_channels, 6, 10)
    expected = F.conv_transpose2d(x, layer.weight, stride=2, padding=1)
    magnitude = F.conv_transpose2d(x.abs(), layer.weight.abs(), stride=2, padding=1)
    with torch.no_grad():  # inference: the fastest of the forms
        for form in UpConv.FORMS:
            # each output sums in_channels × 2 × 2 products (a 4×4 kernel at stride 2)
            assert_equal_up_to_rounding(layer.forward_as(form, x), expected, terms=4 * in_channels,
                                        magnitude=magnitude)
        assert_equal_up_to_rounding(layer(x), expected, terms=4 * in_channels, magnitude=magnitude)
    training = layer(x)  # autograd on: the plain kernel
    assert training.requires_grad
    torch.testing.assert_close(training, expected, rtol=0, atol=0)


def test_layers_time_their_forms_once_per_shape_and_can_be_told_not_to(monkeypatch, tmp_path):
    from rfr_pipeline import cpu_forms

    monkeypatch.setattr(cpu_forms, "_fastest_forms", {})
    monkeypatch.setattr(cpu_forms, "_stored_forms", None)
    monkeypatch.setattr(cpu_forms, "FORM_CACHE_DIR", tmp_path)
    upconv, partial = UpConv(8, 4), PartialConv2d(8, 4, 7, padding=3)
    timed = []
    original = cpu_forms.FastestFormOnCPU._fastest_form
    monkeypatch.setattr(cpu_forms.FastestFormOnCPU, "_fastest_form",
                        lambda self, x, forms: timed.append((type(self), x.shape, forms)) or original(self, x, forms))
    mask = lambda x: torch.ones(x.shape[0], 1, *x.shape[2:])
    with torch.no_grad():
        first = upconv(torch.randn(1, 8, 5, 6))
        again = upconv(torch.randn(1, 8, 5, 6))
        upconv(torch.randn(3, 8, 5, 6))  # another batch size: the same shape, the same form
        upconv(torch.randn(1, 8, 7, 6))  # another size: timed too
        x = torch.randn(1, 8, 20, 24)
        partial(x, mask(x))
        partial(x, mask(x))
        PartialConv2d(8, 4, 3, padding=1)(x, mask(x))  # a 3×3 kernel has only the plain form: nothing to time
        PartialConv2d(8, 4, 7, padding=3).double()(x.double(), mask(x))  # float64: both forms, its own timing
        PartialConv2d(8, 4, 7, padding=3).bfloat16()(x.bfloat16(), mask(x))  # no FFT in bfloat16 on the CPU: plain
    assert timed == [(UpConv, torch.Size([1, 8, 5, 6]), UpConv.FORMS), (UpConv, torch.Size([1, 8, 7, 6]), UpConv.FORMS),
                     (PartialConv2d, x.shape, ("plain", "fft")), (PartialConv2d, x.shape, ("plain", "fft"))]
    assert [key[-2] for key in cpu_forms._fastest_forms][2:] == [torch.float32, torch.float64]
    assert first.shape == again.shape == (1, 4, 10, 12)
    chosen = cpu_forms._fastest_forms
    assert len(chosen) == 4 and set(chosen.values()) <= set(UpConv.FORMS + PartialConv2d.FORMS)

    # A later process on this machine (its own, empty choices) reads them from the file instead of timing again.
    monkeypatch.setattr(cpu_forms, "_fastest_forms", {})
    monkeypatch.setattr(cpu_forms, "_stored_forms", None)
    with torch.no_grad():
        upconv(torch.randn(1, 8, 5, 6))
        partial(x, mask(x))
    again = cpu_forms._fastest_forms
    assert len(timed) == 4 and len(again) == 2 and again == {key: chosen[key] for key in again}
    [stored] = list(tmp_path.glob("cpu-forms-*.json"))
    assert len(json.loads(stored.read_text())) == 4
    # Another machine (another CPU or torch: another file name) times its own.
    monkeypatch.setattr(cpu_forms, "_fastest_forms", {})
    monkeypatch.setattr(cpu_forms, "_stored_forms", None)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "ANOTHER_ISA")
    with torch.no_grad():
        upconv(torch.randn(1, 8, 5, 6))
    assert len(timed) == 5 and len(list(tmp_path.glob("cpu-forms-*.json"))) == 2

    monkeypatch.setattr(cpu_forms, "CPU_AUTOTUNE", False)  # RFR_CPU_AUTOTUNE=0
    with torch.no_grad():
        upconv(torch.randn(1, 8, 9, 6))
        partial(torch.randn(1, 8, 12, 12), torch.ones(1, 1, 12, 12))
    assert len(timed) == 5


@pytest.mark.parametrize(("shape", "kernel"), [((2, 64, 64, 80), 7), ((1, 6, 37, 19), 7), ((2, 5, 40, 33), 5)])
def test_fft_convolution_equals_conv2d(shape, kernel):
    """The FFT form of a partial convolution's convolution: any size (tiles cut at the border), batch, kernel."""
    torch.manual_seed(0)
    layer = PartialConv2d(shape[1], 16, kernel, padding=kernel // 2)
    x = torch.randn(shape) * 3
    expected = F.conv2d(x.double(), layer.weight.double(), padding=kernel // 2)
    # The FFT's rounding is normwise: bounded by the largest sum of absolute products, not by each output's own.
    magnitude = F.conv2d(x.abs(), layer.weight.abs(), padding=kernel // 2).max()
    with torch.no_grad():
        output = layer.forward_as("fft", x)
    assert output.dtype == torch.float32 and output.shape == expected.shape
    assert_equal_up_to_rounding(output.double(), expected, terms=shape[1] * kernel * kernel, magnitude=magnitude)
    assert (output.double() - expected).abs().max() < 1e-3 * magnitude  # far inside that bound in practice
    with torch.no_grad():  # float64 in, float64 arithmetic
        torch.testing.assert_close(layer.double().forward_as("fft", x.double()), expected, rtol=0, atol=1e-9)


def test_fft_weight_spectrum_follows_weight_updates():
    torch.manual_seed(0)
    layer = PartialConv2d(8, 8, 7, padding=3)
    x = torch.randn(1, 8, 30, 30)
    with torch.no_grad():
        layer.forward_as("fft", x)
        layer.weight.mul_(2)  # an in-place update (optimizer step, load_state_dict) must not reuse a stale spectrum
        expected = F.conv2d(x, layer.weight, padding=3)
        torch.testing.assert_close(layer.forward_as("fft", x), expected, rtol=0, atol=1e-4 * expected.abs().max())


@pytest.mark.parametrize("form", ["phase", "phases-in-one"])
def test_upconv_phase_kernels_follow_weight_updates(form):
    torch.manual_seed(0)
    layer = UpConv(1024, 4)
    x = torch.randn(1, 1024, 4, 4)
    with torch.no_grad():
        layer.forward_as(form, x)
        layer.weight.mul_(2)  # an in-place update (optimizer step, load_state_dict) must not reuse stale kernels
        expected = F.conv_transpose2d(x, layer.weight, stride=2, padding=1)
        magnitude = F.conv_transpose2d(x.abs(), layer.weight.abs(), stride=2, padding=1)
        assert_equal_up_to_rounding(layer.forward_as(form, x), expected, terms=4 * 1024, magnitude=magnitude)
        # stale kernels would be off by the whole expected value, far beyond rounding
        assert not torch.allclose(layer.forward_as(form, x), expected / 2, atol=1e-2)


def test_box_sum_equals_the_official_average_pool_times_nine():
    x = torch.randn(2, 5, 7, 9) * 50
    torch.testing.assert_close(_box_sum_3x3(x), F.avg_pool2d(x, 3, 1, 1) * 9, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kernel,stride", [(7, 2), (5, 1), (3, 1)])
def test_one_channel_mask_update_equals_the_official_multichannel_partial_conv(kernel, stride):
    torch.manual_seed(0)
    ours = PartialConv2d(6, 4, kernel, stride=stride, padding=kernel // 2)
    official = OfficialPartialConv2d(6, 4, kernel, stride, kernel // 2)
    official.weight.data.copy_(ours.weight.data)
    x = torch.randn(2, 6, 20, 24)
    mask = (torch.rand(2, 1, 20, 24) > 0.6).float()
    y, new_mask = ours(x, mask)
    y_ref, mask_ref = official(x, mask.expand(-1, 6, -1, -1))
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-5)
    assert torch.equal(new_mask.expand_as(mask_ref), mask_ref)


def test_grouped_masks_equal_the_official_concatenated_mask():
    torch.manual_seed(0)
    ours = PartialConv2d(3 + 5, 4, 3, padding=1)
    official = OfficialPartialConv2d(8, 4, 3, 1, 1)
    official.weight.data.copy_(ours.weight.data)
    x = torch.randn(1, 8, 16, 16)
    masks = (torch.rand(1, 2, 16, 16) > 0.5).float()
    y, _ = ours(x, masks, group_sizes=(3, 5))
    full = torch.cat([masks[:, :1].expand(-1, 3, -1, -1), masks[:, 1:].expand(-1, 5, -1, -1)], dim=1)
    y_ref, _ = official(x, full)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-5)


def test_attention_conv_and_bmm_backends_agree():
    torch.manual_seed(0)
    reference = KnowledgeConsistentAttention(8)
    features = torch.randn(2, 8, 6, 5, requires_grad=True)
    mask = (torch.rand(2, 1, 12, 10) > 0.5).float()
    results = {}
    for backend in ("conv", "bmm"):
        attention = KnowledgeConsistentAttention(8, matmul_backend=backend)
        attention.load_state_dict(reference.state_dict())
        _, memory = attention(features, mask, None)
        out2, _ = attention(features, mask, memory)
        (grad,) = torch.autograd.grad(out2.sum(), features)
        results[backend] = (out2, grad)
    torch.testing.assert_close(results["conv"][0], results["bmm"][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results["conv"][1], results["bmm"][1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='matmul_backend must be None .by device., "conv" or "bmm"'):
        KnowledgeConsistentAttention(8, matmul_backend="cuda")


def test_attention_stays_float32_under_autocast_and_in_half_models():
    torch.manual_seed(0)
    attention = KnowledgeConsistentAttention(8)
    features = torch.randn(1, 8, 6, 6)
    mask = torch.ones(1, 1, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, memory = attention(features, mask, None)
    assert memory.scores.dtype == torch.float32
    reference, _ = attention(features, mask, None)
    torch.testing.assert_close(out.float(), reference, rtol=0.05, atol=0.05)
    half = attention.to(torch.bfloat16)
    _, memory = half(features.bfloat16(), mask, None)
    assert memory.scores.dtype == torch.float32
