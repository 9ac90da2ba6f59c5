"""Self-contained tests of RFRNet on a tiny config: they always run, with or without ../shared."""

import threading

import pytest
import torch
from torch import nn

from rfr_pipeline import RFRNet


def make_inputs(batch=2, height=64, width=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g)
    known = torch.ones(batch, 1, height, width)
    for b in range(batch):  # a rectangular hole plus scattered hole pixels
        top, left = 8 + 4 * b, 6 + 2 * b
        known[b, :, top : top + height // 3, left : left + width // 3] = 0
    known[torch.rand(batch, 1, height, width, generator=g) < 0.05] = 0
    return image, known


def test_defaults_are_the_published_network():
    assert sum(p.numel() for p in RFRNet().parameters()) == 31_224_065
    assert sum(p.numel() for p in RFRNet(trunk_kernel_size=5).parameters()) == 30_929_153


def test_output_shape_dtype_and_eval_determinism(make_model):
    model = make_model()
    image, known = make_inputs()
    with torch.no_grad():
        first = model(image, known)
        second = model(image, known)
    assert first.shape == (2, 3, 64, 48) and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)


def test_hole_pixels_have_no_influence_even_nan(make_model):
    model = make_model()
    image, known = make_inputs()
    hole = known == 0
    noisy = torch.where(hole.expand_as(image), torch.rand_like(image) * 100, image)
    poisoned = torch.where(hole.expand_as(image), torch.full_like(image, float("nan")), image)
    with torch.no_grad():
        reference = model(image, known)
        assert torch.equal(model(noisy, known), reference)
        assert torch.equal(model(poisoned, known), reference)
    # ...while known pixels do matter.
    changed = image.clone()
    changed[known.expand_as(image) == 1] += 0.1
    with torch.no_grad():
        assert not torch.allclose(model(changed, known), reference)


@pytest.mark.numerics
def test_three_channel_mask_equals_one_channel_mask(make_model):
    model = make_model()
    image, known = make_inputs()
    with torch.no_grad():
        assert torch.equal(model(image, known.repeat(1, 3, 1, 1)), model(image, known))


@pytest.mark.numerics
@pytest.mark.parametrize("height,width", [(64, 48), (192, 320)])
def test_batch_equals_samples_one_by_one(make_model, height, width):
    model = make_model()
    image, known = make_inputs(batch=3, height=height, width=width)
    with torch.no_grad():
        batched = model(image, known)
        single = torch.cat([model(image[i : i + 1], known[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 3, height, width)
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)


def test_gradients_reach_every_parameter(make_model):
    model = make_model().train()
    image, known = make_inputs()
    out = model(image * known, known)
    out.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_train_and_eval_return_the_model_and_switch_batchnorm(make_model):
    model = make_model()
    assert model.train() is model and model.training
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.eval() is model and not model.training
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_finetune_mode_freezes_batchnorm_statistics_but_trains_affine(make_model):
    model = make_model()
    assert model.enable_finetune_mode() is model and model.finetune_mode
    model.train()  # a later train() call, as a training loop makes, must not undo it
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert model.training and not any(m.training for m in norms)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    image, known = make_inputs()
    model(image, known).mean().backward()
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in norms)

    model.disable_finetune_mode()
    assert all(m.training for m in norms)
    model(image, known)
    assert not torch.equal(model.area_norm.running_mean, before["area_norm.running_mean"])


@pytest.mark.numerics
def test_float64_and_bfloat16_agree_with_float32(make_model):
    model = make_model()
    image, known = make_inputs()
    with torch.no_grad():
        reference = model(image, known)
        out64 = model.to(torch.float64)(image.double(), known)
        outbf16 = model.to(torch.bfloat16)(image, known)  # the model casts the image to its own dtype
    assert out64.dtype == torch.float64 and outbf16.dtype == torch.bfloat16
    torch.testing.assert_close(out64.float(), reference, rtol=0, atol=1e-5)
    assert (outbf16.float() - reference).abs().max() < 0.1 * reference.abs().max()


def test_concurrent_calls_do_not_share_attention_memory(make_model):
    model = make_model()
    inputs = [make_inputs(batch=1, seed=s) for s in range(4)]
    with torch.no_grad():
        expected = [model(i, k) for i, k in inputs]
    results = [None] * 4

    def work(n):
        with torch.no_grad():
            for _ in range(3):
                results[n] = model(*inputs[n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "image_shape,mask_shape,message",
    [
        ((1, 3, 40, 48), (1, 1, 40, 48), "multiples of 16"),
        ((1, 4, 32, 32), (1, 1, 32, 32), r"\(B, 3, H, W\)"),
        ((3, 32, 32), (1, 1, 32, 32), r"\(B, 3, H, W\)"),
        ((1, 3, 32, 32), (1, 2, 32, 32), "known_mask must be"),
        ((1, 3, 32, 32), (2, 1, 32, 32), "known_mask must be"),
        ((1, 3, 32, 32), (1, 1, 32, 48), "known_mask must be"),
    ],
)
def test_bad_shapes_are_refused_clearly(make_model, image_shape, mask_shape, message):
    model = make_model()
    with pytest.raises(ValueError, match=message):
        model(torch.rand(image_shape), torch.ones(mask_shape))


def test_bad_values_are_refused_clearly(make_model):
    model = make_model()
    image, known = make_inputs(batch=1)
    with pytest.raises(ValueError, match="binary"):
        model(image, known * 0.5)
    bad = image.clone()
    bad[known.expand_as(image) == 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(bad, known)
    three = known.repeat(1, 3, 1, 1)
    three[:, 1, :4, :4] = 1 - three[:, 1, :4, :4]
    with pytest.raises(ValueError, match="identical channels"):
        model(image, three)
    with pytest.raises(ValueError, match="floating-point"):
        model((image * 255).to(torch.uint8), known)
    # A training loop whose data guarantees the values may skip those checks (they wait for the device), in a block.
    with model.value_checks(False):
        model(image, known * 0.5)
        with pytest.raises(ValueError, match="floating-point"):  # type and shape checks still run
            model((image * 255).to(torch.uint8), known)
    with pytest.raises(ValueError, match="binary"):
        model(image, known * 0.5)


def test_save_and_load_with_diffusers(make_model, tmp_path):
    model = make_model(trunk_kernel_size=5, num_iterations=3)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = RFRNet.from_pretrained(tmp_path).eval()
    assert loaded.config.trunk_kernel_size == 5 and loaded.config.num_iterations == 3
    assert list(loaded.config.reasoning_channels) == [8, 16, 16]
    image, known = make_inputs()
    with torch.no_grad():
        assert torch.equal(loaded(image, known), model(image, known))
