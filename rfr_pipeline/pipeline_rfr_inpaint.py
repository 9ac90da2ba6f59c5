"""RFRInpaintPipeline: inpaint photos of any size with RFR-Net, the diffusers way.

    pipe = RFRInpaintPipeline.from_pretrained("path/or/org-name")
    result = pipe(image=photo, mask_image=mask).images[0]      # white mask pixels are repainted

Steps: check → prepare (tensors, white = hole, dilation) → run the network on tiles chosen by the strategy →
composite (known pixels are the input's own, bit for bit) → output (PIL, numpy or torch).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

from . import image_processing as ip
from ._diffusers_registration import register
from .modeling_rfr import SIZE_MULTIPLE, RFRNet, known_regions

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "original", "resize", "crop")
OUTPUT_TYPES = ("pil", "np", "pt")
# A mask covering more than this fraction is suspicious: many masks in the wild use black = hole.
SUSPICIOUS_HOLE_FRACTION = 0.9
# strategy="original" warns above this estimate of the attention's memory (`attention_memory_gib`).
ATTENTION_WARNING_GIB = 4
# "auto" on a large image: a window whose holes are thin (90 % of hole pixels within THIN_HOLE_RADIUS px of a known
# pixel) is filled at full size, or scaled down only as far as THIN_WINDOW_GIB of attention memory requires; scaled
# to `working_size`, a thin stroke would lose the detail beside it. Wider holes are scaled to `working_size`, the
# scale at which the model saw whole objects. (Measured at 512² on both embedded models: docs/quality.md, "Serving choices".)
THIN_HOLE_RADIUS = 14
THIN_WINDOW_GIB = 1.0
# How deep a hole the network fills in one pass (chessboard px from the nearest known pixel, at the scale it sees),
# as a fraction of how far its recurrent area identification reaches (`RFRInpaintPipeline.reach`: 81 px for the
# published configuration, so 48 px). Past the reach a pixel gets no features and comes back black; near it, few
# iterations have reasoned about it and the fill drifts. Deeper holes get a coarse pass first, at a scale where they
# are this shallow. 0.8 kept the 512² evaluations' 50-60 % holes as they were, but left colours the photo does not
# have in the dandelion example at full size (0.4 % and 1.6 % of the hole; 0.0 % with 0.6), which costs 0.003-0.006
# SSIM there instead (docs/large-images.md). A window the network sees at full size (the paper's setting: a 256²
# photo, or "original") is left as it is unless a pixel would be out of reach altogether, so the published model's
# outputs at its own resolution stay the official code's.
REACH_FRACTION = 0.6
# Those coarse fills drift in colour with the depth (a flat photo's came back up to 34 levels off): from this
# fraction of the depth limit (16 px) inwards, their broad colour is the smooth interpolation of their surroundings'
# (`ip.anchor_colours`). Only there: anchoring every scaled window cost PSNR, SSIM and L1 at 512² (the docs).
ANCHOR_FRACTION = 1 / 3
# A window scaled down more than ANCHORED_SCALE (a large photo: an object in a 12-megapixel photo comes to the network
# 5-10× smaller) whose hole is deeper than ANCHORED_DEPTH of the depth limit (32 px) has its colour anchored too:
# there the network's drift showed as a darker ghost of a removed person. At 2× and less (the 512² evaluations) the
# network's own colours measured better, so those windows stay as they were (docs/large-images.md).
ANCHORED_SCALE = 2.0
ANCHORED_DEPTH = 2 / 3


def attention_memory_gib(height: int, width: int) -> float:
    """About how much memory RFR-Net's attention takes on an image of this size: it compares all N = (H/8)·(W/8)
    positions of the (16-padded) feature map pairwise, in float32, with about three N×N score maps alive at once."""
    positions = (-(-height // SIZE_MULTIPLE) * 2) * (-(-width // SIZE_MULTIPLE) * 2)
    return 3 * positions**2 * 4 / 2**30


def side_within_memory(height: int, width: int, gib: float) -> int:
    """The longest side an image of this shape can be scaled to (never up) with its attention within `gib`."""
    factor = min(1.0, (gib / attention_memory_gib(height, width)) ** 0.25)  # memory grows with the 4th power
    return int(max(height, width) * factor)


def _is_integer(value) -> bool:
    """int or numpy integer; not bool (True is an int to Python, but `mask_dilation=True` is a mistake)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_strategy(strategy) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def _check_working_size(working_size) -> None:
    if working_size is not None and (not _is_integer(working_size) or working_size < SIZE_MULTIPLE
                                     or working_size % SIZE_MULTIPLE):
        raise ValueError(f"working_size must be a multiple of {SIZE_MULTIPLE} (at least {SIZE_MULTIPLE}), "
                         f"got {working_size!r}")


def _check_bool(name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


@dataclass
class _Tile:
    """One network input: an image window (maybe rescaled) and where its prediction goes back."""

    index: int  # which image of the batch
    image: torch.Tensor  # (3, h, w) what the network sees
    hole: torch.Tensor  # (h, w) bool
    box: tuple[int, int, int, int]  # (top, left, bottom, right) in the original image
    fills: torch.Tensor  # (bottom - top, right - left) bool: the pixels of the box its prediction is written to
    anchor_depth: int = 0  # > 0: a deep hole's fill, its broad colour anchored to its surroundings (`ip.anchor_colours`)


class RFRInpaintPipeline(DiffusionPipeline):
    r"""Image inpainting with RFR-Net (Li et al., CVPR 2020).

    Args:
        rfrnet ([`RFRNet`]): the inpainting network.
        default_strategy (`str`): the `strategy` used when a call names none; saved in `model_index.json`, so a
            checkpoint can say how it is best served (e.g. `"resize"` for a model of whole faces).
        default_working_size (`int`, *optional*): likewise for `working_size`; `None` means twice
            `rfrnet.config.sample_size`.
        default_flip_average (`bool`, defaults to `False`): likewise for `flip_average`.

    Large images: the network needs sizes in multiples of 16, and its attention memory grows with the square of the
    pixel count, so `strategy` chooses how a photo reaches it:
      * `"original"`: the whole image at full size (padded to a multiple of 16 by reflection, then cropped back);
      * `"resize"`: the whole image scaled so its longest side is `working_size`, the prediction scaled back up;
        only hole pixels are taken from it;
      * `"crop"`: a window around each connected masked region with `crop_margin` px of context (scaled down to
        `working_size` when larger), pasted back;
      * `"auto"`: `"original"` when the longest side is at most `working_size`, else `"crop"`, except that a window
        whose holes are thin (`THIN_HOLE_RADIUS`) is kept at full size as far as memory allows (`THIN_WINDOW_GIB`).
    Whatever the strategy, no hole pixel is left beyond the network's reach (`reach`, `_split_deep`).
    Unless the checkpoint says otherwise (`default_strategy`, `default_working_size`), the strategy is `"auto"` and
    `working_size` twice the resolution the model was trained at (`rfrnet.config.sample_size`).
    """

    model_cpu_offload_seq = "rfrnet"
    # what `callback_on_step_end` can be given after each iteration (see `__call__`)
    _callback_tensor_inputs = ["known_region", "window", "known_mask"]

    def __init__(self, rfrnet: RFRNet, default_strategy: str = "auto", default_working_size: int | None = None,
                 default_flip_average: bool = False):
        super().__init__()
        self.register_modules(rfrnet=rfrnet)
        _check_strategy(default_strategy)
        _check_working_size(default_working_size)
        _check_bool("default_flip_average", default_flip_average)
        self.register_to_config(default_strategy=default_strategy, default_working_size=default_working_size,
                                default_flip_average=default_flip_average)

    @classmethod
    def from_onnx(cls, path, providers: list | None = None, session_options=None) -> RFRInpaintPipeline:
        """The pipeline around an ONNX file of `scripts/export_onnx.py`, the network running on onnxruntime (the
        `[onnx]` extra) with the execution `providers` given (default: the CPU) and `session_options` (default: as
        many threads as PyTorch uses, `torch.get_num_threads()`). Strategies, compositing and the checkpoint's
        serving defaults are the same as for the folder it was exported from."""
        from .onnx_model import ONNXRFRNet

        network = ONNXRFRNet(path, providers, session_options)
        return cls(rfrnet=network, default_strategy=network.default_strategy,
                   default_working_size=network.default_working_size,
                   default_flip_average=network.default_flip_average)

    def save_pretrained(self, save_directory, *args, ship_code: bool = True, **kwargs):
        """diffusers' `save_pretrained` (and so `push_to_hub`), with a copy of this package's code beside the weights
        unless `ship_code=False`: the folder then also loads where rfr-pipeline is not installed, with
        `DiffusionPipeline.from_pretrained(folder_or_repo_id, custom_pipeline="rfr_inpaint", trust_remote_code=True)`
        (remote_code.py). The package itself keeps loading its own code."""
        if ship_code:
            from .remote_code import write_remote_code

            (Path(save_directory) / "rfrnet").mkdir(parents=True, exist_ok=True)
            write_remote_code(save_directory)  # first: a push_to_hub inside the call below uploads the folder
        super().save_pretrained(save_directory, *args, **kwargs)

    # -- 1. check -----------------------------------------------------------------------------------------------

    @staticmethod
    def _as_list(x, what: str) -> list:
        if isinstance(x, (list, tuple)):
            if not x:
                raise ValueError(f"{what} is an empty list")
            return list(x)
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            return list(x.unbind(0))
        if isinstance(x, np.ndarray) and x.ndim == 4:
            return list(x)
        return [x]

    def check_inputs(self, strategy, output_type, working_size, crop_margin, mask_dilation, feather_radius,
                     batch_size, flip_average, restore_detail):
        _check_strategy(strategy)
        _check_bool("flip_average", flip_average)
        _check_bool("restore_detail", restore_detail)
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        _check_working_size(working_size)
        for name, value in (("crop_margin", crop_margin), ("mask_dilation", mask_dilation),
                            ("feather_radius", feather_radius)):
            if value is not None and (not _is_integer(value) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer number of pixels, got {value!r}")
        if not _is_integer(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    # -- 2. prepare ---------------------------------------------------------------------------------------------

    def prepare(self, image, mask_image, invert_mask: bool, resize_mask: bool, mask_dilation: int,
                feather_radius: int = 0):
        images = [ip.prepare_image(x) for x in self._as_list(image, "image")]
        masks = [ip.prepare_mask(m, invert=invert_mask) for m in self._as_list(mask_image, "mask_image")]
        if len(masks) == 1 and len(images) > 1:
            masks = masks * len(images)
        if len(masks) != len(images):
            raise ValueError(f"got {len(images)} images but {len(masks)} masks: give one mask per image, or one mask "
                             "for all")
        holes = []
        for n, (img, hole) in enumerate(zip(images, masks)):
            size = tuple(img.rgb.shape[1:])
            if tuple(hole.shape) != size:
                if not resize_mask:
                    raise ValueError(f"mask {n} is {hole.shape[0]}×{hole.shape[1]} (H×W) but its image is "
                                     f"{size[0]}×{size[1]}; pass resize_mask=True to resize the mask to the image")
                hole = ip.resize(hole[None, None].float(), size, mode="nearest")[0, 0] > 0.5
            if min(size) < 1:
                raise ValueError(f"image {n} is empty ({size[0]}×{size[1]})")
            for name, pixels in (("mask_dilation", mask_dilation), ("feather_radius", feather_radius)):
                if pixels > max(size):  # would reach across the whole image: surely a mistake (and slow)
                    raise ValueError(f"{name}={pixels} is larger than image {n} ({size[1]}×{size[0]} px); expected "
                                     "a few pixels (the halo around a removed object)")
            hole = ip.dilate(hole, mask_dilation)
            fraction = hole.float().mean().item()
            if fraction > SUSPICIOUS_HOLE_FRACTION:
                logger.warning(
                    "mask %d marks %.0f%% of its image for repainting (white = repaint). If your mask is black where "
                    "it should repaint, pass invert_mask=True.", n, 100 * fraction)
            holes.append(hole)
        return images, holes

    # -- 3. run ---------------------------------------------------------------------------------------------------

    def _tiles(self, index, image, hole, strategy, working_size, crop_margin) -> list[_Tile]:
        h, w = hole.shape
        thin_at_full_size = strategy == "auto"
        if strategy == "auto":
            strategy = "original" if max(h, w) <= working_size else "crop"
        if strategy == "original":
            gib = attention_memory_gib(h, w)
            if gib > ATTENTION_WARNING_GIB:
                logger.warning("strategy='original' on a %d×%d image needs about %.0f GiB for the attention alone; "
                               "strategy='crop' or 'resize' needs a fraction of that", w, h, gib)
            return [_Tile(index, image, hole, (0, 0, h, w), hole)]
        if strategy == "resize":
            return [self._scaled_tile(index, image, hole, (0, 0, h, w), working_size)]
        tiles = []
        for t, l, b, r in ip.region_boxes(hole, crop_margin, min_size=min(working_size, 2 * crop_margin)):
            size = working_size
            if thin_at_full_size and ip.hole_radius(hole[t:b, l:r]) <= THIN_HOLE_RADIUS:
                size = max(working_size, side_within_memory(b - t, r - l, THIN_WINDOW_GIB))
            tiles.append(self._scaled_tile(index, image[:, t:b, l:r], hole[t:b, l:r], (t, l, b, r), size))
        return tiles

    @staticmethod
    def _scaled_tile(index, image, hole, box, working_size, fills=None) -> _Tile:
        h, w = hole.shape
        fills = hole if fills is None else fills
        if max(h, w) <= working_size:
            return _Tile(index, image, hole, box, fills)
        size = ip.fit_size(h, w, working_size, SIZE_MULTIPLE)
        return _Tile(index, ip.resize(image[None], size)[0], ip.shrink_mask(hole, size), box, fills)

    def reach(self) -> int:
        """How deep into a hole (chessboard px from the nearest known pixel, at the scale the network sees) the
        network's area identification reaches after its last iteration (`known_regions`): 81 px for the published
        configuration (7×7 windows, 6 iterations), 55 for the 5×5 variant."""
        config = self.rfrnet.config
        width = 4 * (2 * config.num_iterations + 1) * config.trunk_kernel_size + SIZE_MULTIPLE
        known = torch.zeros(1, 1, SIZE_MULTIPLE, width)
        known[..., 0] = 1  # one known column: the reached columns beyond it are the reach
        reached = known_regions(known, config.trunk_kernel_size, config.num_iterations)[-1]
        return int(reached[0, 0, 0].sum().item()) - 1

    def _split_deep(self, tile: _Tile, image: torch.Tensor, hole: torch.Tensor, strategy: str,
                    working_size: int, reach: int) -> tuple[_Tile | None, torch.Tensor]:
        """For a tile whose hole is deeper than `REACH_FRACTION` × `reach` at its scale (or, at full size, than the
        reach itself): a coarse tile, at a scale where nothing
        is deeper than the limit, with more context (the whole image for "original" and "resize", else a window
        grown to `working_size` at that scale), and what is left for the tile itself (full-size (bottom - top,
        right - left) bool). With "original" the coarse tile fills only the deep core (the hole pixels beyond the
        limit) and the tile keeps the band along the hole's edge at full size; otherwise the coarse tile fills it
        all (a core filled apart from its band shows as rings). (None, tile.fills) where the tile is shallow enough
        as it is, or where its image has no known pixel at all; such a tile, if scaled down more than
        `ANCHORED_SCALE` with a hole deeper than `ANCHORED_DEPTH` of the limit, is marked for colour anchoring."""
        depths = ip.hole_depths(tile.hole)
        deepest = int(depths.max())
        t, l, b, r = tile.box
        depth_limit = int(REACH_FRACTION * reach)
        # At full size (the paper's setting) only what is out of reach altogether; a scaled window within the limit.
        tile_limit = reach if tuple(tile.hole.shape) == (b - t, r - l) else depth_limit
        if deepest <= tile_limit or hole.all():
            scaled_down = max(b - t, r - l) > ANCHORED_SCALE * max(tile.hole.shape)
            if scaled_down and deepest > ANCHORED_DEPTH * depth_limit and not hole.all():  # (colours to anchor to)
                tile.anchor_depth = max(1, round(ANCHOR_FRACTION * depth_limit))
            return None, tile.fills
        core = tile.fills
        if strategy == "original":
            core = core & (ip.resize(torch.from_numpy(depths > tile_limit)[None, None].float(), (b - t, r - l),
                                     mode="nearest")[0, 0] > 0.5)
        height, width = hole.shape
        scale = max(tile.hole.shape) / max(b - t, r - l) * depth_limit / deepest
        if strategy in ("original", "resize"):
            box = (0, 0, height, width)
        else:
            side = int(working_size / scale)
            top, bottom = ip._expand(t, b, 0, side, height)
            left, right = ip._expand(l, r, 0, side, width)
            box = (top, left, bottom, right)
        top, left, bottom, right = box
        fills = torch.zeros(bottom - top, right - left, dtype=torch.bool)
        fills[t - top : b - top, l - left : r - left] = core
        longest = max(SIZE_MULTIPLE, int(max(bottom - top, right - left) * scale))
        while True:  # rounding to multiples of 16 and `shrink_mask` may leave a pixel deeper: shrink until none is
            coarse = self._scaled_tile(tile.index, image[:, top:bottom, left:right], hole[top:bottom, left:right], box,
                                       longest, fills)
            if longest <= SIZE_MULTIPLE or ip.hole_depths(coarse.hole).max() <= depth_limit:
                coarse.anchor_depth = max(1, round(ANCHOR_FRACTION * depth_limit))
                return coarse, tile.fills & ~core
            longest = max(SIZE_MULTIPLE, int(longest * 0.85))

    @staticmethod
    def _rescaled(tile: _Tile, image: torch.Tensor, fills: torch.Tensor, anchor_depth: int) -> _Tile:
        """`tile` again, over `image` (its coarse pass pasted in) with only `fills` left to fill, at the same size."""
        t, l, b, r = tile.box
        size = tuple(tile.hole.shape)
        return _Tile(tile.index, ip.resize(image[None, :, t:b, l:r], size)[0], ip.shrink_mask(fills, size), tile.box,
                     fills, anchor_depth)

    @staticmethod
    def _batches(tiles: list[_Tile], batch_size: int) -> list[list[int]]:
        """Tile indices in batches of one shape, at most `batch_size` each."""
        by_shape: dict[tuple, list[int]] = {}
        for n, tile in enumerate(tiles):
            by_shape.setdefault(tuple(tile.hole.shape), []).append(n)
        return [ids[i : i + batch_size] for ids in by_shape.values() for i in range(0, len(ids), batch_size)]

    def run(self, tiles: list[_Tile], batch_size: int, flip_average: bool = False, on_iteration=None
            ) -> list[torch.Tensor]:
        """The network's prediction for each tile, clamped to [0, 1], on the CPU in float32; with `flip_average`, the
        mean of the predictions for the tile and for its mirror image (mirrored back). `on_iteration(iteration,
        region, windows, known_mask)` follows every forward's iterations (`RFRNet.forward`), as `__call__`'s
        callback describes them."""
        predictions: list[torch.Tensor | None] = [None] * len(tiles)
        device, dtype = self.rfrnet.device, self.rfrnet.dtype
        for ids in self._batches(tiles, batch_size):
            images = torch.stack([tiles[n].image for n in ids])
            holes = torch.stack([tiles[n].hole for n in ids])[:, None].float()
            # Pad image and hole alike, so that padding mirrors holes as holes and never leaks their content.
            images, (h, w) = ip.pad_to_multiple(images, SIZE_MULTIPLE)
            holes, _ = ip.pad_to_multiple(holes, SIZE_MULTIPLE)
            images, known = images.to(device, dtype), (1 - holes).to(device)
            reported = None
            if on_iteration is not None:  # the callback learns where each window of the batch is, and its start
                windows = torch.tensor([[tiles[n].index, *tiles[n].box, *tiles[n].image.shape[1:]] for n in ids])
                reported = lambda i, region: on_iteration(i, region, windows, known)  # noqa: E731
            out = self.rfrnet(images, known, on_iteration=reported).clamp(0, 1)
            if flip_average:
                mirrored = None if reported is None else lambda i, region: reported(i, region.flip(-1))
                out = (out + self.rfrnet(images.flip(-1), known.flip(-1), on_iteration=mirrored).flip(-1).clamp(0, 1)) / 2
            out = out[:, :, :h, :w].float().cpu()
            for n, pred in zip(ids, out):
                predictions[n] = pred
        return predictions

    # -- 4. composite -------------------------------------------------------------------------------------------

    @staticmethod
    def paste(canvas: torch.Tensor, image: torch.Tensor, tiles, predictions, restore_detail: bool = True,
              hole: torch.Tensor | None = None) -> None:
        """Write each tile's prediction, at full size, into `canvas` where the tile fills (`_Tile.fills`), and where
        `hole` (H, W) is given, over the known pixels of its box too (for `feather_radius` to blend into)."""
        for tile, pred in zip(tiles, predictions):
            t, l, b, r = tile.box
            if tile.anchor_depth:
                pred = ip.anchor_colours(pred, tile.image, tile.hole, ip.hole_depths(tile.hole), tile.anchor_depth)
            if restore_detail and tuple(pred.shape[1:]) != (b - t, r - l):
                fill = ip.upscale_with_detail(image[:, t:b, l:r], tile.fills, tile.image, tile.hole, pred)
            else:
                fill = ip.resize(pred[None], (b - t, r - l))[0]
            written = tile.fills if hole is None else tile.fills | ~hole[t:b, l:r]
            canvas[:, t:b, l:r] = torch.where(written, fill, canvas[:, t:b, l:r])

    @classmethod
    def composite(cls, image: torch.Tensor, hole: torch.Tensor, tiles, predictions, feather_radius: int,
                  restore_detail: bool = True) -> torch.Tensor:
        canvas = image.clone()
        cls.paste(canvas, image, tiles, predictions, restore_detail, hole)
        if feather_radius == 0:
            return torch.where(hole, canvas, image)  # known pixels stay the input's own values, exactly
        weight = ip.feather_weights(hole, feather_radius)
        return image * (1 - weight) + canvas * weight

    # -- 5. output ----------------------------------------------------------------------------------------------

    @staticmethod
    def to_pil(rgb: torch.Tensor, prepared: ip.PreparedImage, changed: torch.Tensor | None = None) -> PIL.Image.Image:
        """`rgb` as a PIL image in the photo's mode. Where the photo came as 8 bits and `changed` (H, W) marks the
        only pixels that can differ from it, only their bounding box is converted: on a large photo with one object
        removed, converting every pixel cost more than the network."""
        box = ip.bounding_box(changed) if changed is not None and prepared.rgb8 is not None else None
        if box is None:
            array = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        else:
            t, l, b, r = box
            array = prepared.rgb8.copy()  # known pixels are the input's own values, so its bytes
            array[t:b, l:r] = (rgb[:, t:b, l:r].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = PIL.Image.fromarray(array, "RGB")
        if prepared.was_grayscale:
            pil = pil.convert("L")  # equal channels: exact
        if prepared.alpha is not None:
            pil.putalpha(PIL.Image.fromarray(prepared.alpha, "L"))
        return pil

    @torch.no_grad()
    def __call__(
        self,
        image,
        mask_image,
        strategy: str | None = None,
        working_size: int | None = None,
        crop_margin: int | None = None,
        mask_dilation: int = 0,
        feather_radius: int = 0,
        invert_mask: bool = False,
        resize_mask: bool = False,
        batch_size: int = 4,
        flip_average: bool | None = None,
        restore_detail: bool = True,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: list[str] = ("known_region",),
    ):
        r"""Inpaint `image` where `mask_image` is white.

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor`, or a list of them):
                A PIL image, an (H, W, C) numpy array (uint8, uint16, or float in [0, 1]), a (C, H, W) tensor in
                [0, 1], a list of those, or a batched (B, ...) array or tensor. Grayscale photos come back grayscale;
                the alpha of RGBA photos is kept (PIL outputs) and their colour inpainted.
            mask_image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor`, or a list of them):
                The same kinds, one per image or one for all. **White (≥ 0.5) = repaint.** RGB masks are read by
                luminance; RGBA masks by their alpha when it varies or the colour is empty (a painted layer), else by
                colour. An empty mask returns the image unchanged without running the network.
            strategy (`str`, *optional*):
                `"auto"`, `"original"`, `"resize"` or `"crop"` (see the class docstring); defaults to the pipeline's
                `default_strategy` (`"auto"` unless the checkpoint says otherwise).
            working_size (`int`, *optional*):
                The longest side the network processes at once (a multiple of 16); defaults to the pipeline's
                `default_working_size`, else `2 * rfrnet.config.sample_size`.
            crop_margin (`int`, *optional*):
                Context kept around each masked region by `"crop"`; defaults to `working_size // 4`.
            mask_dilation (`int`, defaults to 0):
                Grow the hole by this many pixels first (covers halos and shadows of removed objects).
            feather_radius (`int`, defaults to 0):
                Blend the prediction into this many pixels around the hole (0: a hard edge, known pixels untouched).
            invert_mask (`bool`, defaults to `False`):
                Treat black as repaint instead.
            resize_mask (`bool`, defaults to `False`):
                Resize a mask of another size to its image (nearest neighbour) instead of raising.
            batch_size (`int`, defaults to 4):
                Tiles of equal size sent to the network together.
            flip_average (`bool`, *optional*):
                Also run the network on the mirror image and average the two fills (twice the time). The average
                keeps what both agree on and damps texture the network invents, which scores better on PSNR, SSIM
                and L1 (the model card has the numbers); defaults to the pipeline's `default_flip_average`.
            restore_detail (`bool`, defaults to `True`):
                Where a window was scaled down more than 2× for the network (`ip.DETAIL_MIN_SCALE`), add back the
                fine detail (texture, grain) that the scaling removed, borrowed from the photo's own known pixels
                where the fill looks alike and no stronger than the detail around the hole, so that the fill of a
                large photo is not a blurred patch. `False`: the fill scaled back up as it is: smoother, and higher
                on PSNR and SSIM.
            output_type (`str`, defaults to `"pil"`):
                `"pil"`, `"np"` (float32 in [0, 1], `images[i]` of shape (H, W, 3)) or `"pt"` (float32 on the CPU,
                `images[i]` of shape (3, H, W)). Photos of one size come stacked, as a (B, H, W, 3) array or a
                (B, 3, H, W) tensor; photos of different sizes as a list.
            return_dict (`bool`, defaults to `True`):
                Return an [`~pipelines.ImagePipelineOutput`] rather than a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*):
                Called after each recurrent iteration of each forward (a call runs one forward per batch of
                windows, twice with `flip_average`) as `callback_on_step_end(pipe, step, iteration, callback_kwargs)`:
                `step` counts iterations over the whole call, `iteration` within the forward (0 to
                `num_iterations - 1`). Its return value is not used.
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to `["known_region"]`):
                What `callback_kwargs` holds, from `_callback_tensor_inputs`: `"known_region"`, the region the
                network has reasoned about so far, (B, 1, h, w) over the forward's batch of windows as the network
                sees them (padded to a multiple of 16), 1 = reached (`RFRNet.known_regions` computes the same
                without running the network); `"window"`, where those windows are, (B, 7) int64 rows of (photo
                index, top, left, bottom, right, height, width): the box of the photo a window covers, and its size
                as the network sees it before the padding (its region is `known_region[b, :, :height, :width]`,
                to be scaled onto the box); `"known_mask"`, what the forward started from, shaped as
                `known_region` (1 = known: a deep hole's core filled by a coarser forward is known to the forward
                that fills the band around it).

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: the inpainted images (`.images`), or `(images,)` when
            `return_dict` is `False`.

        A full mask leaves the network no context: it returns a flat colour, the network's fill of an empty canvas.
        Every other hole is filled to its centre, whatever its size: a window whose hole is deeper than the
        network's recurrence reaches well (`REACH_FRACTION` of `reach()`) is filled at a smaller scale with more
        context around it (with `"original"`, only its core; the band along its edge stays at full size).
        """
        strategy = strategy or self.config.default_strategy
        flip_average = self.config.default_flip_average if flip_average is None else flip_average
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [name for name in callback_on_step_end_tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs may name {self._callback_tensor_inputs}, got "
                             f"{unknown}")
        self.check_inputs(strategy, output_type, working_size, crop_margin, mask_dilation, feather_radius, batch_size,
                          flip_average, restore_detail)
        working_size, crop_margin, mask_dilation, feather_radius, batch_size = (
            None if v is None else int(v) for v in (working_size, crop_margin, mask_dilation, feather_radius, batch_size))
        working_size = working_size or self.config.default_working_size or 2 * self.rfrnet.config.sample_size
        crop_margin = working_size // 4 if crop_margin is None else crop_margin
        images, holes = self.prepare(image, mask_image, invert_mask, resize_mask, mask_dilation, feather_radius)

        tiles = []
        for n, (img, hole) in enumerate(zip(images, holes)):
            if hole.any():
                tiles += self._tiles(n, img.rgb, hole, strategy, working_size, crop_margin)
        # A tile whose hole is too deep for the network is replaced by a coarser one (`_split_deep`); with
        # "original" that one fills only the deep core, first, and the tile then fills the band around it.
        reach = self.reach()
        splits = [self._split_deep(tile, images[tile.index].rgb, holes[tile.index], strategy, working_size, reach)
                  for tile in tiles]
        cores = [coarse for coarse, band in splits if coarse is not None and band.any()]
        # Each forward runs the recurrence: the progress bar and `callback_on_step_end` follow its iterations.
        planned = [tile if coarse is None or band.any() else coarse for tile, (coarse, band) in zip(tiles, splits)]
        forwards = (len(self._batches(cores, batch_size)) + len(self._batches(planned, batch_size))) * (1 + flip_average)
        step = 0
        with self.progress_bar(total=forwards * self.rfrnet.config.num_iterations) if forwards else nullcontext() as bar:

            def on_iteration(iteration: int, region: torch.Tensor, windows: torch.Tensor, start: torch.Tensor) -> None:
                nonlocal step
                if callback_on_step_end is not None:  # (its returned dict has nothing to update: the network's state
                    known = {"known_region": region, "window": windows, "known_mask": start}  # is not a latent)
                    callback_on_step_end(self, step, iteration,
                                         {name: known[name] for name in callback_on_step_end_tensor_inputs})
                step += 1
                bar.update()

            bases = [img.rgb for img in images]  # what each photo's tiles see: the photo, with any core pasted in
            if cores:
                core_predictions = self.run(cores, batch_size, flip_average, on_iteration)
                for n in {c.index for c in cores}:
                    bases[n] = bases[n].clone()
                    mine = [(c, p) for c, p in zip(cores, core_predictions) if c.index == n]
                    self.paste(bases[n], images[n].rgb, *zip(*mine), restore_detail)
            for n, (coarse, band) in enumerate(splits):
                if coarse is not None:  # the coarse tile instead, or the tile around its core
                    tiles[n] = (self._rescaled(tiles[n], bases[tiles[n].index], band, coarse.anchor_depth)
                                if band.any() else coarse)
            predictions = self.run(tiles, batch_size, flip_average, on_iteration) if tiles else []

        results = []
        for n, (base, hole) in enumerate(zip(bases, holes)):
            mine = [(t, p) for t, p in zip(tiles, predictions) if t.index == n]
            if not mine:
                results.append(base)
                continue
            results.append(self.composite(base, hole, *zip(*mine), feather_radius, restore_detail))
        self.maybe_free_model_hooks()

        if output_type == "pil":
            changed = [ip.dilate(hole, feather_radius) for hole in holes]  # (feathering blends around the hole)
            output = [self.to_pil(*args) for args in zip(results, images, changed)]
        else:
            # images[i] has one shape whatever the batch: (H, W, 3) for "np", (3, H, W) for "pt"; a batch of one
            # size comes stacked, photos of different sizes come as a list.
            arrays = results if output_type == "pt" else [r.permute(1, 2, 0).numpy() for r in results]
            if len({tuple(a.shape) for a in arrays}) == 1:
                output = torch.stack(arrays) if output_type == "pt" else np.stack(arrays)
            else:
                output = arrays
        if not return_dict:
            return (output,)
        return ImagePipelineOutput(images=output)


register(RFRInpaintPipeline)  # so that diffusers' generic loaders find this class and the RFRNet component
