"""Large holes in large photos: every hole pixel is reached by the network's area identification, whatever the
photo's size, the hole's size and shape, the strategy and the model (docs/large-images.md).

"Reached" is measured from the network itself: each forward's known mask goes through `RFRNet.known_regions`
(checked here against the masks `forward` really computes), and every hole pixel of each photo must be written by
some tile (`_Tile.fills`)."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from scipy import ndimage

from rfr_pipeline import FACES_MODEL, SCENES_MODEL, RFRInpaintPipeline
from rfr_pipeline import image_processing as ip
from rfr_pipeline.masks import object_mask as hole_mask
from rfr_pipeline.modeling_rfr import known_regions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def noisy_flat_photo(width: int, height: int, colour=(120, 130, 110), noise=4, seed=0) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    array = np.clip(rng.normal(0, noise, (height, width, 3)) + np.array(colour), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(array)


# -- what the network reached, from the network --------------------------------------------------------------------


class Coverage:
    """Records, during pipeline calls, each forward's hole pixels that the network's area identification did not
    reach, and each tile's pixels written back to its photo."""

    def __init__(self, pipe, monkeypatch):
        self.unreached, self.forwards, self.written = 0, 0, {}
        pipe.rfrnet.register_forward_hook(self._on_forward)
        paste = RFRInpaintPipeline.paste

        def recording_paste(canvas, image, tiles, predictions, restore_detail=True, hole=None):
            for tile in tiles:
                t, l, b, r = tile.box
                written = self.written.setdefault(tile.index, torch.zeros(image.shape[1:], dtype=torch.bool))
                written[t:b, l:r] |= tile.fills
            return paste(canvas, image, tiles, predictions, restore_detail, hole)

        monkeypatch.setattr(RFRInpaintPipeline, "paste", staticmethod(recording_paste))

    def _on_forward(self, module, args, output):
        _, known = args
        reached = module.known_regions(known)[-1]
        self.unreached += int(((known[:, :1] == 0) & (reached == 0)).sum())
        self.forwards += 1

    def check(self, *holes: np.ndarray) -> None:
        assert self.forwards > 0
        assert self.unreached == 0, f"{self.unreached} hole pixels the network's area identification never reached"
        for n, hole in enumerate(holes):
            written = self.written[n].numpy()
            assert not (hole & ~written).any(), f"{int((hole & ~written).sum())} hole pixels no tile filled"


@pytest.fixture
def tiny_pipe(make_model, monkeypatch):
    # The sweep's windows come in many shapes; timing the CPU forms of each (first use) would cost more than the
    # network itself, and the coverage does not depend on the form.
    monkeypatch.setattr("rfr_pipeline.cpu_forms.CPU_AUTOTUNE", False)
    pipe = RFRInpaintPipeline(rfrnet=make_model(sample_size=64))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_known_regions_are_the_masks_forward_computes(make_model):
    model = make_model(trunk_kernel_size=5)
    seen = []
    model.area_conv2.register_forward_hook(lambda module, args, output: seen.append(output[1]))
    known = torch.ones(2, 1, 192, 160)
    known[0, :, 10:180, 20:150] = 0
    known[1, :, :, 40:] = 0
    with torch.no_grad():
        model(torch.rand(2, 3, 192, 160), known)
    regions = model.known_regions(known)
    assert len(regions) == model.config.num_iterations + 1 == len(seen) + 1
    for region, mask in zip(regions[1:], seen):
        assert torch.equal(region, torch.nn.functional.interpolate(mask, scale_factor=2.0))
    assert (regions[-1] == 0).any() and not torch.equal(regions[0], regions[-1])  # it grew, and stopped short


@pytest.mark.parametrize(("kernel", "iterations", "reach"), [(7, 6, 81), (5, 6, 55), (7, 3, 45)])
def test_reach_follows_the_configuration(make_model, kernel, iterations, reach):
    pipe = RFRInpaintPipeline(rfrnet=make_model(trunk_kernel_size=kernel, num_iterations=iterations))
    assert pipe.reach() == reach
    # A square hole as deep as the reach is reached to its centre; one pixel deeper is not.
    for depth, complete in ((reach, True), (reach + 2, False)):
        known = torch.ones(1, 1, 2 * depth + 64, 2 * depth + 64)
        known[..., 32 : 32 + 2 * depth, 32 : 32 + 2 * depth] = 0
        reached = known_regions(known, kernel, iterations)[-1]
        assert bool(reached.all()) is complete


SWEEP = [  # (width, height, shape, fraction, strategies): 600×400 to 4000×3000 and a portrait 1080×1920
    (600, 400, "square", 0.01, ("auto", "crop", "resize", "original")),
    (600, 400, "disk", 0.3, ("auto", "crop", "resize", "original")),
    (600, 400, "person", 0.1, ("auto", "crop", "resize", "original")),
    (600, 400, "square", 0.6, ("auto", "crop", "resize", "original")),
    (1200, 900, "car", 0.1, ("auto", "crop", "resize")),
    (1200, 900, "stroke", 0.05, ("auto", "crop", "resize")),
    (1080, 1920, "person", 0.3, ("auto", "crop", "resize")),
    (1080, 1920, "disk", 0.6, ("auto", "crop", "resize")),
    (2000, 1500, "square", 0.1, ("auto", "crop", "resize")),
    (4000, 3000, "car", 0.05, ("auto", "crop", "resize")),
    (4000, 3000, "square", 0.6, ("auto", "crop", "resize")),
    (4000, 3000, "stroke", 0.01, ("auto",)),
]


# The embedded models' working size: windows of 512 px let a hole be deeper than the reach (81 px) at the network's
# scale, as they do for a real model (the tiny model's own default, 128, never would).
SWEEP_WORKING_SIZE = 512


def _sweep_call(pipe, monkeypatch, width, height, shape, fraction, strategy) -> tuple[Coverage, np.ndarray]:
    mask = hole_mask(shape, width, height, fraction)
    hole = np.asarray(mask) > 127
    assert abs(hole.mean() - fraction) < 0.2 * fraction + 0.002
    coverage = Coverage(pipe, monkeypatch)
    try:
        result = pipe(noisy_flat_photo(width, height), mask, strategy=strategy, working_size=SWEEP_WORKING_SIZE,
                      flip_average=False).images[0]
    finally:
        pipe.rfrnet._forward_hooks.clear()
    assert result.size == (width, height)
    return coverage, hole


@pytest.mark.parametrize(("width", "height", "shape", "fraction", "strategies"), SWEEP)
def test_every_hole_pixel_is_reached(tiny_pipe, monkeypatch, width, height, shape, fraction, strategies):
    for strategy in strategies:
        coverage, hole = _sweep_call(tiny_pipe, monkeypatch, width, height, shape, fraction, strategy)
        coverage.check(hole)


@pytest.mark.parametrize(("width", "height", "shape", "fraction", "strategy"), [
    (600, 400, "square", 0.6, "original"),
    (2000, 1500, "square", 0.1, "crop"),
    (1080, 1920, "disk", 0.6, "resize"),
])
def test_the_sweep_sees_unreached_pixels_without_the_coarse_pass(tiny_pipe, monkeypatch, width, height, shape,
                                                                fraction, strategy):
    """The sweep can fail: with the deep-hole handling switched off, these cases leave pixels unreached."""
    monkeypatch.setattr(RFRInpaintPipeline, "_split_deep", lambda self, tile, *args: (None, tile.fills))
    coverage, hole = _sweep_call(tiny_pipe, monkeypatch, width, height, shape, fraction, strategy)
    assert coverage.unreached > 0
    with pytest.raises(AssertionError, match="never reached"):
        coverage.check(hole)


EMBEDDED = {"scenes": SCENES_MODEL, "faces": FACES_MODEL}


@pytest.fixture(scope="module")
def embedded():
    pipes = {name: RFRInpaintPipeline.from_pretrained(path) for name, path in EMBEDDED.items()}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    return pipes


# How far the fill of a flat photo's hole may stray from its colour (mean over the hole, per channel, in levels) and
# spread (95th percentile of the distance to its own mean), as measured on these cases (docs/large-images.md): the
# scenes model within 1.3 levels and 8.3 (the noise's σ is 4: its own 95th percentile is 7.8), the face model, which
# pulls fills towards skin tones, within 3.5 and 8.9. Before deep cores took their colour from the membrane
# interpolation (`ip.anchor_colours`) the face model drifted 5.6 and spread 11.8; without any anchoring it drifted 34.
FLAT_DRIFT = {"scenes": 3, "faces": 6}
FLAT_SPREAD = {"scenes": 10, "faces": 11}


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["scenes", "faces"])
@pytest.mark.parametrize(("width", "height", "shape", "fraction", "strategy"), [
    (600, 400, "square", 0.3, "original"),  # a coarse pass for the core, the band at full size
    (1200, 900, "disk", 0.26, "auto"),
    (1080, 1920, "person", 0.1, "crop"),
    (2000, 1500, "square", 0.6, "resize"),
    (4000, 3000, "disk", 0.05, "auto"),  # an object-sized hole in a 12-megapixel photo
])
def test_embedded_models_fill_a_flat_photo_flat(embedded, monkeypatch, name, width, height, shape, fraction, strategy):
    colour = np.array((120, 130, 110))
    mask = hole_mask(shape, width, height, fraction)
    hole = np.asarray(mask) > 127
    coverage = Coverage(embedded[name], monkeypatch)
    result = np.asarray(embedded[name](noisy_flat_photo(width, height), mask, strategy=strategy).images[0])
    coverage.check(hole)
    fill = result[hole].astype(float)
    assert (fill.max(1) > 40).all(), "dark pixels in the fill of a photo whose darkest channel is about 110"
    assert np.abs(fill.mean(0) - colour).max() <= FLAT_DRIFT[name]
    # flat: no rings or blotches, the fill varies about as little as the photo's noise and the drift allow
    assert np.percentile(np.abs(fill - fill.mean(0)), 95) <= FLAT_SPREAD[name]


def foreign_colour_fraction(result: np.ndarray, hole: np.ndarray, ring: int = 60) -> float:
    """The fraction of hole pixels whose chroma (R−G, G−B) lies outside the range of the `ring`-px band around the
    hole: colours the photo does not have there."""
    around = ndimage.binary_dilation(hole, iterations=ring) & ~hole
    rgb = result.astype(int)
    chroma = np.stack([rgb[..., 0] - rgb[..., 1], rgb[..., 1] - rgb[..., 2]], -1)
    low, high = chroma[around].min(0), chroma[around].max(0)
    return float(((chroma[hole] < low) | (chroma[hole] > high)).any(1).mean())


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["scenes", "faces"])
def test_removing_a_dandelion_from_a_real_photo(embedded, monkeypatch, name):
    """The README's large-photo figure at half size (2656×1494; the figure is made at full size): the big dandelion
    and its stalk removed, 18 % of the photo, with every strategy but "original" (whose attention would need
    hundreds of GiB at this size)."""
    photo = PIL.Image.open(EXAMPLES / "dandelions_photo.jpg").reduce(2)
    mask = PIL.Image.open(EXAMPLES / "dandelions_mask.png").reduce(2)
    hole = np.asarray(mask) > 127
    assert 0.15 < hole.mean() < 0.2
    for strategy in ("auto", "crop", "resize"):
        coverage = Coverage(embedded[name], monkeypatch)
        result = np.asarray(embedded[name](photo, mask, strategy=strategy).images[0])
        coverage.check(hole)
        assert foreign_colour_fraction(result, hole) < 0.005, strategy
        assert np.array_equal(result[~hole], np.asarray(photo)[~hole])
        embedded[name].rfrnet._forward_hooks.clear()


def test_smooth_fill_interpolates_the_colours_around_the_hole():
    image = torch.zeros(3, 64, 96)
    image[0, :, :48], image[2, :, 48:] = 1.0, 1.0  # red left, blue right
    hole = torch.zeros(64, 96, dtype=torch.bool)
    hole[16:48, 24:72] = True
    filled = ip.smooth_fill(image, hole)
    assert torch.equal(filled[:, ~hole], image[:, ~hole])
    row = filled[:, 32, 24:72]
    assert (row[0, 1:] <= row[0, :-1] + 1e-6).all() and (row[2, 1:] >= row[2, :-1] - 1e-6).all()  # red fades to blue
    assert row[0, 0] > 0.6 and row[2, -1] > 0.6 and 0.3 < row[0, 24] < 0.7
    assert torch.equal(ip.smooth_fill(image, torch.zeros_like(hole)), image)


@pytest.mark.numerics
def test_anchor_colours_fills_a_deep_core_from_the_colours_around_it_and_keeps_the_networks_edge():
    colour = torch.tensor([0.5, 0.3, 0.2])[:, None, None]
    image = colour.expand(3, 256, 256).clone()
    hole = torch.zeros(256, 256, dtype=torch.bool)
    hole[48:208, 48:208] = True
    rings = 0.05 * torch.cos(torch.hypot(*torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")) / 3)
    prediction = torch.where(hole, image + 0.2 + rings, image)  # drifted by 0.2, with rings
    depths = ip.hole_depths(hole)
    anchored = ip.anchor_colours(prediction, image, hole, depths, 16)
    core = torch.from_numpy(depths >= 16)
    assert (anchored[:, core] - colour[:, 0]).abs().max() < 0.002  # no drift, no rings
    edge = torch.from_numpy(depths == 1)
    assert (anchored - prediction)[:, edge].abs().mean() < 0.1 * 0.2  # at the edge the fill stays the network's
    assert torch.equal(anchored[:, ~hole], prediction[:, ~hole])


def test_smooth_fill_takes_nothing_from_beyond_the_holes_boundary():
    """A hole in a white window of a dark room comes back white (averages over blocks brought the room in)."""
    image = torch.full((3, 200, 200), 0.1)
    image[:, 40:160, 40:160] = 0.95  # the window
    hole = torch.zeros(200, 200, dtype=torch.bool)
    hole[60:140, 60:140] = True  # 20 px of window all round
    filled = ip.smooth_fill(image, hole)
    torch.testing.assert_close(filled, image.masked_fill(hole, 0.95))
    image[:, :40, 40:160] = 0.95  # the window up to the photo's top, and the hole with it: flat across the border
    hole[:60, 60:140] = True
    torch.testing.assert_close(ip.smooth_fill(image, hole), image.masked_fill(hole, 0.95))


def test_an_object_in_a_large_photo_has_its_colour_anchored_a_2x_window_keeps_the_networks(tiny_pipe):
    """A window scaled down more than 2× whose hole is deeper than 2/3 of the depth limit (an object in a large
    photo: the network's colour drifted there, the ghost of a removed person) is anchored; at 2× (the 512²
    evaluations) or with a shallower hole it is left as the network fills it (docs/large-images.md)."""
    from rfr_pipeline.pipeline_rfr_inpaint import ANCHORED_DEPTH, REACH_FRACTION, _Tile

    reach = tiny_pipe.reach()
    limit = int(REACH_FRACTION * reach)
    side = 160
    for half_width, scale, anchored in ((40, 3, True), (40, 2, False), (28, 3, False)):
        assert (half_width > ANCHORED_DEPTH * limit) == (half_width == 40) and half_width <= limit
        hole = torch.zeros(side, side, dtype=torch.bool)
        hole[side // 2 - half_width:side // 2 + half_width, side // 2 - half_width:side // 2 + half_width] = True
        full = side * scale
        big_hole = ip.resize(hole[None, None].float(), (full, full), mode="nearest")[0, 0] > 0.5
        tile = _Tile(0, torch.rand(3, side, side), hole, (0, 0, full, full), big_hole)
        coarse, _ = tiny_pipe._split_deep(tile, torch.rand(3, full, full), big_hole, "auto", 256, reach)
        assert coarse is None and (tile.anchor_depth > 0) == anchored, (half_width, scale)
