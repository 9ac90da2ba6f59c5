"""RFRInpaintPipeline with a tiny real model: inputs, outputs, strategies, edge cases, saving and loading."""

import io
import json
import logging

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from rfr_pipeline import RFRInpaintPipeline
from rfr_pipeline import image_processing as ip


@pytest.fixture(scope="module")
def pipe(make_model):
    return RFRInpaintPipeline(rfrnet=make_model(sample_size=64))


def hole_of(mask: PIL.Image.Image) -> np.ndarray:
    return np.asarray(mask.convert("L")) >= 128


def assert_known_identical(result: PIL.Image.Image, image: PIL.Image.Image, hole: np.ndarray):
    out, src = np.asarray(result), np.asarray(image)
    assert out.shape == src.shape
    assert np.array_equal(out[~hole], src[~hole]), "known pixels changed"
    assert (out[hole] != src[hole]).any(), "the hole was not repainted"


# -- inputs and outputs -------------------------------------------------------------------------------------------


def test_pil_in_pil_out_keeps_known_pixels_bit_identical(box_mask, photo, pipe):
    image, mask = photo(), box_mask()
    output = pipe(image=image, mask_image=mask)
    assert isinstance(output, ImagePipelineOutput) and len(output.images) == 1
    assert output.images[0].mode == "RGB" and output.images[0].size == image.size
    assert_known_identical(output.images[0], image, hole_of(mask))


def test_every_input_type_gives_the_same_result(box_mask, photo, pipe):
    image, mask = photo(), box_mask()
    array = np.asarray(image)
    mask_array = np.array(mask)
    reference = pipe(image, mask, output_type="np").images
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255
    variants = {
        "numpy uint8": (array, mask_array),
        "numpy float": (array.astype(np.float32) / 255, mask_array.astype(np.float32) / 255),
        "numpy bool mask": (array, mask_array > 0),
        "torch CHW": (tensor, torch.from_numpy(mask_array).float()[None] / 255),
        "torch BCHW": (tensor[None], torch.from_numpy(mask_array).float()[None, None] / 255),
        "lists": ([image], [mask]),
        "RGB mask": (image, mask.convert("RGB")),
        "1-bit mask": (image, mask.convert("1")),
    }
    for name, (img, msk) in variants.items():
        got = pipe(img, msk, output_type="np").images
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-6, err_msg=name)


def test_output_types_and_tuple_return(box_mask, photo, pipe):
    image, mask = photo(), box_mask()
    as_np = pipe(image, mask, output_type="np").images
    as_pt = pipe(image, mask, output_type="pt").images
    (as_pil,) = pipe(image, mask, return_dict=False)
    assert as_np.shape == (1, 96, 128, 3) and as_np.dtype == np.float32
    assert as_pt.shape == (1, 3, 96, 128) and as_pt.dtype == torch.float32
    np.testing.assert_array_equal(as_pt.permute(0, 2, 3, 1).numpy(), as_np)
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))
    assert 0 <= as_np.min() and as_np.max() <= 1


def test_float_inputs_keep_their_exact_values_outside_the_hole(pipe):
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(64, 80)
    mask[10:30, 20:50] = 1
    out = pipe(image, mask, output_type="pt").images[0]
    known = mask == 0
    assert torch.equal(out[:, known], image[:, known])


@pytest.mark.numerics
def test_batch_equals_one_by_one(box_mask, photo, pipe):
    images = [photo(seed=s) for s in range(3)]
    masks = [box_mask(boxes=((10 + 10 * s, 20, 40 + 10 * s, 60),)) for s in range(3)]
    batched = pipe(images, masks, output_type="np").images
    single = np.concatenate([pipe(i, m, output_type="np").images for i, m in zip(images, masks)])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    # One mask for every image.
    shared = pipe(images, masks[0], output_type="np").images
    assert shared.shape == (3, 96, 128, 3)


def test_images_of_different_sizes_come_back_as_a_list(box_mask, photo, pipe):
    images = [photo(64, 80), photo(96, 128)]
    masks = [box_mask(64, 80, ((5, 5, 20, 20),)), box_mask()]
    out = pipe(images, masks, output_type="pt").images
    assert isinstance(out, list) and [tuple(o.shape) for o in out] == [(3, 64, 80), (3, 96, 128)]
    arrays = pipe(images, masks, output_type="np").images
    assert isinstance(arrays, list) and [a.shape for a in arrays] == [(64, 80, 3), (96, 128, 3)]
    # images[i] has the same shape whether the batch was stacked or not
    assert pipe(images[1], masks[1], output_type="np").images[0].shape == arrays[1].shape
    np.testing.assert_array_equal(pipe(images[1], masks[1], output_type="np").images[0], arrays[1])


# -- sizes and strategies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(250, 333), (17, 1), (1, 17), (31, 47)])
def test_odd_sizes(photo, pipe, size):
    height, width = size
    image = photo(height, width)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : height // 3 + max(1, height // 3), width // 3 : width // 3 + max(1, width // 3)] = 255
    result = pipe(image, mask).images[0]
    assert result.size == (width, height)
    assert_known_identical(result, image, mask > 0)


@pytest.mark.parametrize("strategy", ["original", "resize", "crop", "auto"])
def test_strategies_on_a_large_photo(box_mask, photo, pipe, strategy):
    image = photo(384, 512)  # four times the working size (the attention of "original" grows with its square)
    mask = box_mask(384, 512, ((50, 75, 90, 130), (250, 350, 300, 410)))
    calls = []
    hook = pipe.rfrnet.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    try:
        result = pipe(image, mask, strategy=strategy, working_size=128).images[0]
    finally:
        hook.remove()
    assert result.size == (512, 384)
    assert_known_identical(result, image, hole_of(mask))
    sizes = [s[-2:] for s in calls]
    if strategy == "original":
        assert sizes == [(384, 512)]
    elif strategy == "resize":
        assert sizes == [(96, 128)]
    else:  # crop (auto picks crop at this size): one window per separate region, each at most working_size
        assert len(calls) == 2 and all(s[0] == 1 and max(s[-2:]) <= 128 for s in calls)


def test_crop_merges_overlapping_windows(box_mask, photo, pipe):
    image = photo(600, 800)
    mask = box_mask(600, 800, ((100, 100, 140, 140), (150, 150, 180, 190)))
    calls = []
    hook = pipe.rfrnet.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
    try:
        result = pipe(image, mask, strategy="crop", working_size=256, crop_margin=40).images[0]
    finally:
        hook.remove()
    assert len(calls) == 1 and calls[0][0] == 1
    assert_known_identical(result, image, hole_of(mask))


def test_auto_keeps_windows_of_thin_holes_at_full_size_as_far_as_memory_allows(pipe):
    """Scaled down to the working size, a scratch loses the detail beside it: "auto" scales a window down only when
    its holes are wide, or as far as the attention's memory requires."""
    import PIL.ImageDraw

    from rfr_pipeline.pipeline_rfr_inpaint import THIN_HOLE_RADIUS, THIN_WINDOW_GIB, attention_memory_gib

    def tile_shapes(hole, strategy="auto"):
        image = torch.zeros(3, *hole.shape)
        return [tuple(t.hole.shape) for t in pipe._tiles(0, image, hole, strategy, working_size=128, crop_margin=32)]

    scratch = torch.zeros(600, 800, dtype=torch.bool)
    scratch[100:500, 300:306] = True  # 6 px wide, 400 px long: one window of 464 × 70 px
    square = torch.zeros(600, 800, dtype=torch.bool)
    square[200:400, 300:500] = True  # 200 px wide
    assert ip.hole_radius(scratch) <= THIN_HOLE_RADIUS < ip.hole_radius(square)
    assert tile_shapes(scratch) == [(464, 70)]  # at full size
    assert max(*tile_shapes(square)[0]) <= 128  # scaled to the working size
    assert max(*tile_shapes(scratch, "crop")[0]) <= 128  # "crop" scales every window, as documented

    # A scratch across a 3000×4000 photo: its window is the whole photo, scaled only as far as memory requires.
    canvas = PIL.Image.new("L", (4000, 3000))
    PIL.ImageDraw.Draw(canvas).line([(100, 100), (3900, 2900)], fill=255, width=8)
    ((height, width),) = tile_shapes(torch.from_numpy(np.asarray(canvas) > 0))
    assert 128 < max(height, width) < 4000 and abs(width / height - 4 / 3) < 0.05
    assert 0.5 * THIN_WINDOW_GIB < attention_memory_gib(height, width) <= THIN_WINDOW_GIB


def _textured_photo(height=256, width=256, seed=0):
    """Left half: mid-grey with fine random texture (1-px grain, lost when scaled down 4×); right half: flat, light."""
    generator = torch.Generator().manual_seed(seed)
    photo = torch.full((3, height, width), 0.8)
    photo[:, :, : width // 2] = 0.4 + 0.15 * (torch.rand(1, height, width // 2, generator=generator) - 0.5).sign()
    return photo


def _grain(x, hole):
    """Mean absolute difference between horizontal neighbours inside the hole: the fine texture there."""
    return (x[:, :, 1:] - x[:, :, :-1]).abs().mean(0)[hole[:, 1:] & hole[:, :-1]].mean().item()


def test_restored_detail_is_borrowed_from_known_pixels_that_look_like_the_fill():
    photo = _textured_photo()
    textured_hole = torch.zeros(256, 256, dtype=torch.bool)
    textured_hole[96:160, 32:96] = True
    flat_hole = torch.zeros(256, 256, dtype=torch.bool)
    flat_hole[96:160, 160:224] = True
    for hole, texture_expected in ((textured_hole, True), (flat_hole, False)):
        perfect = ip.resize(photo[None], (64, 64))[0]  # a network that fills the 4× smaller window exactly
        plain = ip.resize(perfect[None], (256, 256))[0]
        restored = ip.upscale_with_detail(photo, hole, perfect, ip.shrink_mask(hole, (64, 64)), perfect)
        assert restored.shape == photo.shape and 0 <= restored.min() and restored.max() <= 1
        if texture_expected:  # the scaled-up fill is smooth; restored, its grain is the photo's own
            assert _grain(plain, hole) < 0.3 * _grain(photo, hole)
            assert 0.7 * _grain(photo, hole) < _grain(restored, hole) < 1.3 * _grain(photo, hole)
        else:  # the flat side's look-alikes are flat: nothing is added there
            torch.testing.assert_close(restored[:, hole], plain[:, hole], rtol=0, atol=1e-6)
    # Scaled 2× along its longest side, a window is left as the network filled it, even where rounding its other
    # side to a multiple of 16 scaled that side a little more (264 px to 128).
    tall, tall_hole = _textured_photo(512, 264), torch.zeros(512, 264, dtype=torch.bool)
    tall_hole[200:300, 40:100] = True
    small_tall = ip.resize(tall[None], (256, 128))[0]
    torch.testing.assert_close(ip.upscale_with_detail(tall, tall_hole, small_tall,
                                                      ip.shrink_mask(tall_hole, (256, 128)), small_tall),
                               ip.resize(small_tall[None], (512, 264))[0])
    # Nothing to restore: a fill at full size, or no known patch far enough from the hole to trust.
    torch.testing.assert_close(ip.upscale_with_detail(photo, textured_hole, photo, textured_hole, photo), photo)
    everywhere = torch.ones(256, 256, dtype=torch.bool)
    small = ip.resize(photo[None], (64, 64))[0]
    torch.testing.assert_close(ip.upscale_with_detail(photo, everywhere, small, ip.shrink_mask(everywhere, (64, 64)), small),
                               ip.resize(small[None], (256, 256))[0])


def test_restored_detail_is_no_stronger_than_the_detail_around_the_hole():
    # A smooth fill whose colour matches a strongly textured strip at the window's edge better than the flat,
    # slightly darker surroundings of the hole: the best look-alikes are all in the strip, but the hole is surrounded
    # by flat photo, so what it borrows is damped to the (near zero) detail there.
    generator = torch.Generator().manual_seed(3)
    photo = torch.full((3, 256, 256), 0.50) + 0.002 * torch.randn(3, 256, 256, generator=generator)
    photo[:, :, :48] = 0.55 + 0.2 * (torch.rand(1, 256, 48, generator=generator) - 0.5).sign()
    hole = torch.zeros(256, 256, dtype=torch.bool)
    hole[64:192, 128:224] = True
    small_hole = ip.shrink_mask(hole, (64, 64))
    fill = ip.resize(photo[None], (64, 64))[0]
    fill[:, small_hole] = 0.55  # the strip's colour at the network's scale
    plain = ip.resize(fill[None], (256, 256))[0]
    restored = ip.upscale_with_detail(photo, hole, fill, small_hole, fill)
    strip_grain = _grain(photo, (torch.arange(256) < 48)[None, :].expand(256, 256))
    surroundings = ~ip.dilate(hole, 8) & (torch.arange(256) > 64)[None, :].expand(256, 256)
    assert _grain(restored, hole) < 3 * _grain(photo, surroundings) < 0.05 * strip_grain
    assert (restored - plain)[:, hole].abs().max() < 0.02  # no mark anywhere


def test_restored_detail_does_not_repeat_one_patch_across_a_smooth_fill():
    # Texture all around and a flat fill: every patch of the fill looks alike, so the single best look-alike would be
    # the same known patch everywhere, repeated at the grid's period (8 px at the network's scale, 32 px here).
    photo = _textured_photo(512, 1024, seed=4)[:, :, :512]  # texture everywhere
    hole = torch.zeros(512, 512, dtype=torch.bool)
    hole[128:384, 128:384] = True
    small_hole = ip.shrink_mask(hole, (128, 128))
    fill = ip.resize(photo[None], (128, 128))[0]
    fill[:, small_hole] = 0.4  # the texture's mean
    added = (ip.upscale_with_detail(photo, hole, fill, small_hole, fill) - ip.resize(fill[None], (512, 512))[0])[0]
    inner = added[176:336, 176:336]  # where every patch lies wholly in the fill
    assert inner.std() > 0.1  # texture was restored (the photo's: 0.15) ...
    for shift in (32, 64):  # ... and is not one patch tiled (correlation 1.0 at both periods when it was)
        for a, b in ((inner[:, :-shift], inner[:, shift:]), (inner[:-shift], inner[shift:])):
            assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] < 0.6


def test_the_pipeline_restores_detail_where_it_scaled_a_window_down(pipe):
    photo = _textured_photo(512, 512, seed=1)
    hole = torch.zeros(512, 512, dtype=torch.bool)
    hole[200:300, 80:160] = True  # in the textured half: "auto" scales its window (about 290 px) to 128 px
    restored = pipe(photo, hole, working_size=128, crop_margin=96, output_type="pt").images[0]
    plain = pipe(photo, hole, working_size=128, crop_margin=96, restore_detail=False, output_type="pt").images[0]
    assert torch.equal(restored[:, ~hole], photo[:, ~hole]) and torch.equal(plain[:, ~hole], photo[:, ~hole])
    assert _grain(restored, hole) > 2 * _grain(plain, hole)
    # A window scaled down by at most 2× (here 184 px to 128) is left as the network filled it.
    mild = torch.zeros(512, 512, dtype=torch.bool)
    mild[200:320, 60:180] = True
    assert torch.equal(pipe(photo, mild, working_size=128, crop_margin=32, output_type="pt").images[0],
                       pipe(photo, mild, working_size=128, crop_margin=32, restore_detail=False,
                            output_type="pt").images[0])
    with pytest.raises(ValueError, match="restore_detail must be True or False, got 'yes'"):
        pipe(photo, hole, restore_detail="yes")


def test_hole_radius_is_half_the_width_of_a_stroke():
    stroke = torch.zeros(100, 100, dtype=torch.bool)
    stroke[:, 40:50] = True  # 10 px wide
    assert 4 <= ip.hole_radius(stroke) <= 5
    assert ip.hole_radius(torch.zeros(10, 10, dtype=torch.bool)) == 0


# -- masks and photos of every kind -------------------------------------------------------------------------------


def test_rgba_photo_keeps_its_alpha(box_mask, photo, pipe):
    image = photo()
    alpha = PIL.Image.fromarray(np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1)))
    rgba = image.copy()
    rgba.putalpha(alpha)
    result = pipe(rgba, box_mask()).images[0]
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(alpha))
    assert_known_identical(result.convert("RGB"), image, hole_of(box_mask()))


def test_grayscale_photo_comes_back_grayscale(box_mask, photo, pipe):
    image = photo(mode="L")
    result = pipe(image, box_mask()).images[0]
    assert result.mode == "L"
    assert_known_identical(result, image, hole_of(box_mask()))


def test_rgba_painted_layer_uses_alpha_whatever_the_brush_colour(box_mask, photo, pipe):
    image, mask = photo(), box_mask()
    expected = pipe(image, mask, output_type="np").images
    for brush in [(0, 0, 0), (255, 255, 255), (255, 0, 0)]:
        layer = np.zeros((96, 128, 4), np.uint8)  # transparent everywhere...
        layer[hole_of(mask)] = (*brush, 255)  # ...but the painted stroke
        got = pipe(image, PIL.Image.fromarray(layer, "RGBA"), output_type="np").images
        np.testing.assert_array_equal(got, expected, err_msg=str(brush))
    # An opaque RGBA mask (uniform alpha, colour content) is read by colour.
    opaque = mask.convert("RGBA")
    np.testing.assert_array_equal(pipe(image, opaque, output_type="np").images, expected)


def test_inverted_looking_mask_is_taken_literally_warned_about_and_invertible(box_mask, photo, pipe, caplog):
    image = photo()
    black_hole = PIL.Image.fromarray(255 - np.asarray(box_mask(boxes=((40, 50, 45, 55),))))  # black = hole
    with caplog.at_level(logging.WARNING, logger="rfr_pipeline.pipeline_rfr_inpaint"):
        literal = pipe(image, black_hole).images[0]
    assert "invert_mask=True" in caplog.text
    assert_known_identical(literal, image, hole_of(black_hole))  # white (almost everything) was repainted
    inverted = pipe(image, black_hole, invert_mask=True).images[0]
    assert_known_identical(inverted, image, ~hole_of(black_hole))


def test_exif_orientation_is_respected(box_mask, photo, pipe):
    image = photo(96, 128)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    rotated_file = PIL.Image.open(io.BytesIO(buffer.getvalue()))
    upright = image.transpose(PIL.Image.Transpose.ROTATE_270)
    mask = box_mask(128, 96, ((20, 20, 50, 60),))
    result = pipe(rotated_file, mask).images[0]
    assert result.size == (96, 128)
    assert_known_identical(result, upright, hole_of(mask))


# -- edge cases ---------------------------------------------------------------------------------------------------


def test_empty_mask_returns_the_input_without_running_the_model(photo, pipe):
    image = photo()
    calls = []
    hook = pipe.rfrnet.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        result = pipe(image, np.zeros((96, 128), np.uint8)).images[0]
    finally:
        hook.remove()
    assert calls == []
    assert np.array_equal(np.asarray(result), np.asarray(image))


def test_a_full_mask_gives_a_flat_colour(photo, pipe):
    """As docs/guide.md says: no context, no content. The network's zero padding tints the outermost pixels only."""
    for size in ((96, 128), (200, 300)):
        result = pipe(photo(*size), np.full(size, 255, np.uint8), output_type="np").images
        assert result.shape == (1, *size, 3) and np.isfinite(result).all()
        inner = (result[0, 8:-8, 8:-8] * 255).round().reshape(-1, 3)
        assert np.ptp(inner, axis=0).max() == 0, np.ptp(inner, axis=0)


def test_mask_dilation_and_feathering(box_mask, photo, pipe):
    image, mask = photo(), box_mask()
    hole = hole_of(mask)
    grown = pipe(image, mask, mask_dilation=4).images[0]
    ring = np.zeros_like(hole)
    ring[16:54, 26:74] = True
    assert_known_identical(grown, image, ring)  # exactly the hole grown by 4 px is repainted
    feathered = np.asarray(pipe(image, mask, feather_radius=3).images[0])
    changed = (feathered != np.asarray(image)).any(-1)
    within_3px = np.zeros_like(hole)
    within_3px[17:53, 27:73] = True
    assert changed[~hole].any() and not changed[~within_3px].any()


def test_bad_inputs_are_refused_clearly(box_mask, photo, pipe):
    image = photo()
    with pytest.raises(ValueError, match="pass resize_mask=True"):
        pipe(image, box_mask(48, 64))
    resized = pipe(image, box_mask(48, 64, ((10, 15, 25, 35),)), resize_mask=True).images[0]
    assert resized.size == (128, 96)
    bad = torch.rand(3, 32, 32)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pipe(bad, torch.ones(32, 32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        pipe(torch.rand(3, 32, 32) * 255, torch.ones(32, 32))
    with pytest.raises(ValueError, match="strategy must be one of"):
        pipe(image, box_mask(), strategy="tile")
    with pytest.raises(ValueError, match="output_type must be one of"):
        pipe(image, box_mask(), output_type="latent")
    with pytest.raises(ValueError, match="2 masks"):
        pipe([image] * 3, [box_mask()] * 2)
    with pytest.raises(ValueError, match="PIL image, a numpy array or a torch tensor"):
        pipe("photo.png", box_mask())
    with pytest.raises(ValueError, match="working_size must be a multiple of 16"):
        pipe(image, box_mask(), working_size=100)
    with pytest.raises(ValueError, match="mask_dilation must be a non-negative integer number of pixels, got True"):
        pipe(image, box_mask(), mask_dilation=True)
    for name in ("mask_dilation", "feather_radius"):  # a radius across the whole photo: an error, at once
        with pytest.raises(ValueError, match=rf"{name}=1000000 is larger than image 0 \(128×96 px\)"):
            pipe(image, box_mask(), **{name: 10**6})
    for batch_size in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            pipe(image, box_mask(), batch_size=batch_size)
    with pytest.raises(ValueError, match=r"integer values in \[-5, 10\]; expected 0-255"):
        pipe(np.full((32, 32, 3), 10, np.int32) - np.eye(32, dtype=np.int32)[..., None] * 15, np.ones((32, 32), bool))
    with pytest.raises(ValueError, match="unsupported dtype torch.uint32"):
        pipe(torch.zeros(3, 32, 32, dtype=torch.uint32), np.ones((32, 32), bool))
    # numpy integers are integers
    np.testing.assert_array_equal(pipe(image, box_mask(), mask_dilation=np.int64(2), batch_size=np.int64(1),
                                       output_type="np").images,
                                  pipe(image, box_mask(), mask_dilation=2, output_type="np").images)


def test_16_bit_arrays_are_read_as_16_bit_however_dark(box_mask, photo, pipe):
    eight_bit = np.asarray(photo())
    sixteen_bit = eight_bit.astype(np.uint16) * 257  # the same picture at 16 bits
    np.testing.assert_array_equal(pipe(sixteen_bit, box_mask(), output_type="np").images,
                                  pipe(eight_bit, box_mask(), output_type="np").images)
    dark = (eight_bit // 2).astype(np.uint16)  # every value under 256, still 16-bit data: nearly black
    result = pipe(dark, box_mask(), output_type="np").images[0]
    hole = np.asarray(box_mask()) > 0
    np.testing.assert_allclose(result[~hole], dark[~hole] / 65535, atol=1e-7)


def test_unloadable_folders_name_the_file_and_the_problem(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "bad-config")
    config = tmp_path / "bad-config" / "rfrnet" / "config.json"
    config.write_text(config.read_text().replace('"num_iterations": 6', '"num_iterations": "two"'))
    with pytest.raises(ValueError, match=r"rfrnet/config.json: num_iterations must be a positive integer, got 'two'"):
        RFRInpaintPipeline.from_pretrained(tmp_path / "bad-config")
    config.write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        RFRInpaintPipeline.from_pretrained(tmp_path / "bad-config")
    pipe.save_pretrained(tmp_path / "truncated")
    weights = tmp_path / "truncated" / "rfrnet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"rfrnet/diffusion_pytorch_model.safetensors is not a readable safetensors "
                                         r"file \(.*\); it is probably truncated or corrupt"):
        RFRInpaintPipeline.from_pretrained(tmp_path / "truncated")
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        RFRInpaintPipeline.from_pretrained(tmp_path / "truncated")


# -- saving and loading -------------------------------------------------------------------------------------------


def test_save_and_load_a_local_folder(box_mask, photo, pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "RFRInpaintPipeline" and index["rfrnet"] == ["rfr_pipeline", "RFRNet"]
    assert (tmp_path / "rfrnet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = RFRInpaintPipeline.from_pretrained(tmp_path)
    image, mask = photo(), box_mask()
    np.testing.assert_array_equal(loaded(image, mask, output_type="np").images, pipe(image, mask, output_type="np").images)
    generic = DiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(generic, RFRInpaintPipeline)


def test_an_incompatible_diffusers_fails_loudly_and_the_supported_range_is_the_declared_one(monkeypatch):
    """The registration extends diffusers internals: if a release drops them, say so and which releases work."""
    import tomllib

    import diffusers
    from diffusers.pipelines import pipeline_loading_utils
    from packaging.specifiers import SpecifierSet

    from rfr_pipeline import _diffusers_registration as registration
    from tests.conftest import REPO_ROOT

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"diffusers{registration.SUPPORTED_DIFFUSERS}" in declared
    assert diffusers.__version__ in SpecifierSet(registration.SUPPORTED_DIFFUSERS)  # what this run checks
    monkeypatch.delattr(pipeline_loading_utils, "LOADABLE_CLASSES")
    with pytest.raises(ImportError, match=r"cannot register .* Install a supported diffusers: .*diffusers>=0\.35"):
        registration.register(RFRInpaintPipeline)


def test_a_checkpoint_carries_its_default_strategy_and_working_size(box_mask, photo, pipe, tmp_path):
    faces = RFRInpaintPipeline(rfrnet=pipe.rfrnet, default_strategy="resize", default_working_size=48)
    faces.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["default_strategy"] == "resize" and index["default_working_size"] == 48
    loaded = RFRInpaintPipeline.from_pretrained(tmp_path)
    assert loaded.config.default_strategy == "resize" and loaded.config.default_working_size == 48
    calls = []
    hook = loaded.rfrnet.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape[-2:])))
    try:
        loaded(photo(96, 128), box_mask(96, 128))  # no strategy named: the checkpoint's resize to 48
        loaded(photo(96, 128), box_mask(96, 128), strategy="original")  # a named one wins
    finally:
        hook.remove()
    assert calls == [(32, 48), (96, 128)]  # resized so the longest side fits 48, in multiples of 16
    assert pipe.config.default_strategy == "auto" and pipe.config.default_working_size is None
    with pytest.raises(ValueError, match="strategy must be one of"):
        RFRInpaintPipeline(rfrnet=pipe.rfrnet, default_strategy="stretch")
    with pytest.raises(ValueError, match="multiple of 16"):
        RFRInpaintPipeline(rfrnet=pipe.rfrnet, default_working_size=50)


def test_flip_average_is_the_mean_of_the_fill_and_the_mirrored_fill(box_mask, photo, pipe, tmp_path):
    image, mask = photo(48, 80), box_mask(48, 80, ((8, 10, 30, 40), (20, 50, 44, 70)))  # multiples of 16: no padding
    mirror = PIL.ImageOps.mirror
    plain = pipe(image, mask, output_type="pt").images[0]
    mirrored = pipe(mirror(image), mirror(mask), output_type="pt").images[0].flip(-1)
    averaged = pipe(image, mask, flip_average=True, output_type="pt").images[0]
    hole = torch.from_numpy(hole_of(mask))
    assert (plain - mirrored)[:, hole].abs().max() > 1e-3  # the network is not mirror-symmetric: two real fills
    torch.testing.assert_close(averaged, (plain + mirrored) / 2, rtol=0, atol=1e-6)
    assert torch.equal(averaged[:, ~hole], plain[:, ~hole])  # known pixels stay the input's own

    # A checkpoint can make it the default; a call can still turn it off. Older checkpoints load without it.
    RFRInpaintPipeline(rfrnet=pipe.rfrnet, default_flip_average=True).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["default_flip_average"] is True
    loaded = RFRInpaintPipeline.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(image, mask, output_type="pt").images[0], averaged, rtol=0, atol=1e-6)
    torch.testing.assert_close(loaded(image, mask, flip_average=False, output_type="pt").images[0], plain,
                               rtol=0, atol=1e-6)
    index = json.loads((tmp_path / "model_index.json").read_text())
    del index["default_flip_average"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    assert RFRInpaintPipeline.from_pretrained(tmp_path).config.default_flip_average is False
    with pytest.raises(ValueError, match="flip_average must be True or False, got 'yes'"):
        pipe(image, mask, flip_average="yes")
    with pytest.raises(ValueError, match="default_flip_average must be True or False, got 1"):
        RFRInpaintPipeline(rfrnet=pipe.rfrnet, default_flip_average=1)


def test_fp16_variant_and_dtype(box_mask, make_model, photo, pipe, tmp_path):
    half = RFRInpaintPipeline(rfrnet=make_model(sample_size=64).to(torch.float16))
    half.save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "rfrnet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    loaded = RFRInpaintPipeline.from_pretrained(tmp_path, variant="fp16", dtype=torch.float16)
    assert loaded.rfrnet.dtype == torch.float16
    as_float = RFRInpaintPipeline.from_pretrained(tmp_path, variant="fp16", dtype=torch.float32)
    assert as_float.rfrnet.dtype == torch.float32
    result = loaded(photo(), box_mask(), output_type="np").images
    reference = pipe(photo(), box_mask(), output_type="np").images
    assert np.abs(result - reference).max() < 0.1  # half precision, same model


def test_sharded_weights(pipe, tmp_path):
    pipe.save_pretrained(tmp_path, max_shard_size="20KB")
    shards = list((tmp_path / "rfrnet").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "rfrnet" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    loaded = RFRInpaintPipeline.from_pretrained(tmp_path)
    for name, tensor in pipe.rfrnet.state_dict().items():
        assert torch.equal(loaded.rfrnet.state_dict()[name], tensor), name


def test_hub_repo_id_from_the_offline_cache(box_mask, photo, pipe, tmp_path):
    """A repo id resolves through huggingface_hub's cache (HF_HUB_OFFLINE=1, set by conftest): fill the cache the way
    a download would, then load by id."""
    from huggingface_hub import constants

    saved = tmp_path / "saved"
    pipe.save_pretrained(saved)
    repo_cache = tmp_path / "hub" / "models--rfr-tests--tiny-rfr"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo_cache / "snapshots" / commit
    for path in saved.rglob("*"):
        if path.is_file():
            target = snapshot / path.relative_to(saved)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (repo_cache / "refs").mkdir(parents=True)
    (repo_cache / "refs" / "main").write_text(commit)
    assert constants.HF_HUB_OFFLINE

    loaded = RFRInpaintPipeline.from_pretrained("rfr-tests/tiny-rfr", cache_dir=tmp_path / "hub")
    image, mask = photo(), box_mask()
    np.testing.assert_array_equal(loaded(image, mask, output_type="np").images, pipe(image, mask, output_type="np").images)
    with pytest.raises(OSError):  # not in the cache and no network: an error, never random weights
        RFRInpaintPipeline.from_pretrained("rfr-tests/absent", cache_dir=tmp_path / "hub")



def test_original_strategy_warns_when_the_attention_would_need_too_much_memory(pipe, caplog):
    hole = torch.zeros(1536, 2048, dtype=torch.bool)
    hole[100:200, 100:200] = True
    with caplog.at_level(logging.WARNING, logger="rfr_pipeline.pipeline_rfr_inpaint"):
        tiles = pipe._tiles(0, torch.zeros(3, 1536, 2048), hole, "original", working_size=512, crop_margin=128)
    assert len(tiles) == 1 and "about 27 GiB" in caplog.text and "strategy='crop'" in caplog.text


@pytest.mark.parametrize("radius", [1, 3, 17])
def test_the_separable_filters_equal_their_two_dimensional_definitions(radius):
    # dilate, feather_weights and low_pass compute a square as a row then a column (linear in the radius, where the
    # square's own definition grows with its area: a 33×33 box cost 1 s at 512²); the results must be the same.
    import torch.nn.functional as F

    from rfr_pipeline import image_processing as ip

    generator = torch.Generator().manual_seed(radius)
    hole = torch.rand(61, 47, generator=generator) > 0.97
    square = F.max_pool2d(hole[None, None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0
    assert torch.equal(ip.dilate(hole, radius), square)
    box = F.avg_pool2d(hole[None, None].float(), 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    torch.testing.assert_close(ip.feather_weights(hole, radius), torch.maximum(hole.float(), box[0, 0]))
    image = torch.rand(3, 61, 47, generator=generator)
    reference = image[None]
    for _ in range(3):
        reference = F.avg_pool2d(F.pad(reference, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)
    torch.testing.assert_close(ip.low_pass(image, radius), reference[0])


def test_the_windows_let_a_caller_map_each_iteration_onto_the_photo(box_mask, photo, pipe):
    """callback_kwargs["window"] places each region on its photo: two photos, holes served through scaled windows
    (`crop`, the larger photo's scaled down), the last iteration's regions mapped back cover every hole pixel, and the first leave some uncovered."""
    import torch.nn.functional as F

    images = [photo(200, 260, seed=1), photo(150, 180, seed=2)]
    masks = [box_mask(200, 260, ((20, 30, 120, 150), (150, 200, 190, 250))), box_mask(150, 180, ((40, 40, 120, 140),))]
    iterations = pipe.rfrnet.config.num_iterations
    reached = [np.full((m.size[1], m.size[0]), iterations, int) for m in masks]  # first iteration reaching a pixel
    scaled = []

    def follow(pipeline, step, iteration, callback_kwargs):
        region, windows = callback_kwargs["known_region"], callback_kwargs["window"]
        assert windows.dtype == torch.int64 and windows.shape == (region.shape[0], 7)
        for r, (index, top, left, bottom, right, height, width) in zip(region, windows.tolist()):
            scaled.append((bottom - top, right - left) != (height, width))
            on_photo = F.interpolate(r[None, :, :height, :width].float(), size=(bottom - top, right - left))[0, 0] > 0.5
            box = reached[index][top:bottom, left:right]
            box[on_photo.numpy() & (box > iteration)] = iteration
        return {}

    pipe(images, masks, strategy="crop", working_size=160, flip_average=False, callback_on_step_end=follow,
         callback_on_step_end_tensor_inputs=["known_region", "window"])
    assert any(scaled)  # (windows scaled to the working size: the boxes are larger than what the network saw)
    for mask, first in zip(masks, reached):
        hole = hole_of(mask)
        assert (first[hole] < iterations).all()  # every hole pixel reached by some iteration of some window
        assert (first[hole] > 0).any()  # not all at once: the hole closes over the iterations


def test_callback_on_step_end_follows_each_recurrent_iteration(box_mask, photo, pipe, capsys):
    from diffusers.callbacks import PipelineCallback

    # A hole 60 px deep in a 128×160 photo, at full size: several iterations before the network reaches its centre.
    image, mask = photo(128, 160), box_mask(128, 160, ((4, 4, 124, 156),))
    iterations = pipe.rfrnet.config.num_iterations
    seen = []

    def follow(pipeline, step, iteration, callback_kwargs):
        seen.append((step, iteration, callback_kwargs["known_region"].clone()))
        return {}

    quiet = pipe(image, mask, strategy="original", output_type="np").images
    for flip_average, forwards in ((False, 1), (True, 2)):
        seen.clear()
        followed = pipe(image, mask, strategy="original", output_type="np", flip_average=flip_average,
                        callback_on_step_end=follow).images
        if not flip_average:
            np.testing.assert_array_equal(followed, quiet)  # following changes nothing
        assert [(step, iteration) for step, iteration, _ in seen] == \
            [(n, n % iterations) for n in range(iterations * forwards)]
    # Each region is the network's own, the one RFRNet.known_regions computes without running it; it only grows.
    known = 1 - torch.from_numpy(hole_of(mask))[None, None].float()
    expected = pipe.rfrnet.known_regions(known)[1:]
    mirrored = [region.flip(-1) for region in pipe.rfrnet.known_regions(known.flip(-1))[1:]]
    for (_, _, region), reached in zip(seen, expected + mirrored):  # (the mirror image's forward, mirrored back)
        assert region.shape == (1, 1, 128, 160)
        torch.testing.assert_close(region, reached, rtol=0, atol=0)
    coverage = [region.mean().item() for _, _, region in seen[:iterations]]
    assert coverage == sorted(coverage) and coverage[0] < coverage[-1]
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs may name \['known_region', 'window', 'known_mask'\]"):
        pipe(image, mask, callback_on_step_end=follow, callback_on_step_end_tensor_inputs=["latents"])

    class Counting(PipelineCallback):  # diffusers' callback classes work too
        tensor_inputs = ["known_region"]

        def callback_fn(self, pipeline, step, timestep, callback_kwargs):
            seen.append((step, timestep, callback_kwargs["known_region"]))
            return callback_kwargs

    seen.clear()
    pipe(image, mask, strategy="original", flip_average=False, callback_on_step_end=Counting())
    assert len(seen) == iterations

    # A progress bar over the iterations, as diffusers' pipelines show one over their steps.
    capsys.readouterr()
    previous = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=False)
    try:
        pipe(image, mask, strategy="original", flip_average=True)
    finally:
        pipe.set_progress_bar_config(**previous)
    assert f"{2 * iterations}/{2 * iterations}" in capsys.readouterr().err
