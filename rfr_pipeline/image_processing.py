"""Turning user images and masks into tensors and back, and the geometry of the large-image strategies.

Conventions (as diffusers' inpainting pipelines): images are RGB in [0, 1]; masks are **white = repaint**,
binarised at 0.5. Everything here is deterministic and pure: no model calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

MASK_THRESHOLD = 0.5


@dataclass
class PreparedImage:
    """One photo as the pipeline works on it."""

    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) uint8 alpha of an RGBA/LA photo, re-attached to PIL outputs
    was_grayscale: bool = False
    rgb8: np.ndarray | None = None  # (H, W, 3) uint8: an 8-bit PIL photo as decoded (PIL outputs start from it)


def _describe(x) -> str:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _float_array_to_unit(array: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    """Float data must already be in [0, 1]; integer data is read as 8-bit (0-255) or 16-bit."""
    tensor = array if isinstance(array, torch.Tensor) else torch.tensor(array)
    if tensor.dtype == torch.bool:
        return tensor.float()
    if not tensor.is_floating_point():
        if tensor.dtype == torch.uint8:
            return tensor.float() / 255
        if tensor.dtype == torch.uint16:  # a 16-bit image, however dark
            return tensor.to(torch.int32).float() / 65535
        if tensor.dtype in (torch.int16, torch.int32, torch.int64):  # no bit depth given: guess from the values
            low, high = tensor.min().item(), tensor.max().item()
            if low < 0 or high > 65535:
                raise ValueError(f"{what} has integer values in [{low}, {high}]; expected 0-255 (8-bit) or 0-65535 "
                                 "(16-bit)")
            return tensor.float() / (65535 if high > 255 else 255)
        raise ValueError(f"{what}: unsupported dtype {tensor.dtype}; expected uint8, uint16, bool, or float in [0, 1]")
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what} holds NaN or infinite values; expected finite values in [0, 1]")
    low, high = tensor.min().item(), tensor.max().item()
    if low < 0 or high > 1:
        raise ValueError(
            f"{what} has values in [{low:.3g}, {high:.3g}]; float images and masks must be in [0, 1] "
            "(divide 8-bit data by 255, or pass it as uint8)"
        )
    return tensor


def prepare_image(image) -> PreparedImage:
    """A PIL image, an (H, W, C) / (H, W) numpy array, or a (C, H, W) tensor → `PreparedImage`.

    PIL images are rotated by their EXIF orientation. Grayscale photos become RGB (3 equal channels); the alpha of
    RGBA/LA photos is kept aside and re-attached to PIL outputs, the colour is inpainted as is.
    """
    alpha = None
    if isinstance(image, PIL.Image.Image):
        image = PIL.ImageOps.exif_transpose(image)
        was_gray = image.mode in ("L", "LA", "I", "I;16", "F", "1")
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA", "PA"):
            alpha = np.asarray(image.getchannel("A"))
        if image.mode in ("I", "I;16", "F"):
            array = np.asarray(image).astype(np.float32)
            array = array / (65535.0 if array.max() > 255 else 255.0)
            rgb = torch.from_numpy(np.clip(array, 0, 1))[None].repeat(3, 1, 1)
            return PreparedImage(rgb.contiguous(), None, True)
        rgb8 = np.array(image.convert("RGB"))
        rgb = torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255
        return PreparedImage(rgb.contiguous(), alpha, was_gray, rgb8)

    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"a numpy image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {_describe(image)}")
        tensor = torch.tensor(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
            raise ValueError(f"a tensor image must be (C, H, W) with C in 1, 3, 4 (or batched (B, C, H, W)); "
                             f"got {_describe(image)}")
    else:
        raise ValueError(f"image must be a PIL image, a numpy array or a torch tensor; got {_describe(image)}")

    channels = tensor.shape[0]
    if channels == 4:
        alpha_unit = _float_array_to_unit(tensor[3], "image alpha")
        alpha = (alpha_unit * 255).round().to(torch.uint8).numpy()
        tensor = tensor[:3]
    rgb = _float_array_to_unit(tensor, "image")
    if channels == 1:
        rgb = rgb.repeat(3, 1, 1)
    return PreparedImage(rgb.contiguous(), alpha, channels == 1)


def prepare_mask(mask, invert: bool = False) -> torch.Tensor:
    """A mask image/array/tensor → (H, W) bool, True = repaint (white, ≥ 0.5).

    Grayscale masks are read directly; RGB masks through their luminance. RGBA masks (e.g. a layer painted in an
    editor) use their **alpha** — what was painted is the hole, whatever the brush colour — when the alpha varies or
    the colour channels are empty (all black); an RGBA mask with uniform alpha and colour content is read by colour.
    """
    if isinstance(mask, PIL.Image.Image):
        mask = PIL.ImageOps.exif_transpose(mask)
        if mask.mode == "P":
            mask = mask.convert("RGBA" if "transparency" in mask.info else "RGB")
        if mask.mode == "1":
            mask = mask.convert("L")
        if mask.mode in ("I", "I;16", "F"):
            array = np.asarray(mask).astype(np.float32)
            array = array / (65535.0 if array.max() > 255 else 255.0)
        elif mask.mode in ("RGBA", "LA", "PA"):
            array = np.asarray(mask.convert("RGBA")).astype(np.float32) / 255
        elif mask.mode == "L":
            array = np.asarray(mask).astype(np.float32) / 255
        else:
            array = np.asarray(mask.convert("RGB")).astype(np.float32) / 255
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.ndim == 3:
            tensor = tensor.permute(2, 0, 1)
    elif isinstance(mask, np.ndarray):
        if mask.ndim == 3 and mask.shape[2] in (1, 3, 4):
            mask = mask.transpose(2, 0, 1)
        elif mask.ndim != 2:
            raise ValueError(f"a numpy mask must be (H, W) or (H, W, C) with C in 1, 3, 4; got {_describe(mask)}")
        tensor = _float_array_to_unit(np.ascontiguousarray(mask), "mask_image")
    elif isinstance(mask, torch.Tensor):
        tensor = mask.detach().cpu()
        if tensor.ndim == 3 and tensor.shape[0] not in (1, 3, 4):
            raise ValueError(f"a tensor mask must be (H, W) or (C, H, W) with C in 1, 3, 4; got {_describe(mask)}")
        if tensor.ndim not in (2, 3):
            raise ValueError(f"a tensor mask must be (H, W) or (C, H, W); got {_describe(mask)}")
        tensor = _float_array_to_unit(tensor, "mask_image")
    else:
        raise ValueError(f"mask_image must be a PIL image, a numpy array or a torch tensor; got {_describe(mask)}")

    if tensor.ndim == 3:
        channels = tensor.shape[0]
        if channels == 4:
            colour, alpha = tensor[:3], tensor[3]
            use_alpha = bool(alpha.max() != alpha.min()) or not bool(colour.any())
            tensor = alpha if use_alpha else _luminance(colour)
        elif channels == 3:
            tensor = _luminance(tensor)
        else:
            tensor = tensor[0]
    hole = tensor >= MASK_THRESHOLD
    return ~hole if invert else hole


def centre_square(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """The centre square of a photo (its shorter side), resized to size × size with bicubic filtering: how the
    official test, our evaluation and our validation prepare photos."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.resize((size, size), PIL.Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def dilate(hole: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow a (H, W) bool hole by `pixels` in every direction (square structuring element)."""
    if pixels <= 0:
        return hole
    from scipy import ndimage

    # A square is a row then a column: two 1-D running maxima, each linear in the pixel count whatever the radius
    # (a 2-D max pooling grows with the square of the radius; a summed-area table was 4× slower on 12 MP).
    grown = hole.numpy().astype(np.uint8)
    for axis in (0, 1):
        grown = ndimage.maximum_filter1d(grown, 2 * pixels + 1, axis=axis, mode="constant")
    return torch.from_numpy(grown.astype(bool))


def bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a (H, W) bool mask's True pixels; (0, 0, 0, 0) for an empty mask."""
    rows, cols = mask.any(1), mask.any(0)
    if not bool(rows.any()):
        return 0, 0, 0, 0
    top, bottom = int(rows.float().argmax()), len(rows) - int(rows.flip(0).float().argmax())
    left, right = int(cols.float().argmax()), len(cols) - int(cols.flip(0).float().argmax())
    return top, left, bottom, right


def feather_weights(hole: torch.Tensor, radius: int) -> torch.Tensor:
    """(H, W) blending weight of the prediction: 1 inside the hole, fading to 0 over `radius` px outside it."""
    weight = hole.float()[None, None]
    if radius <= 0:
        return weight[0, 0]
    side = 2 * radius + 1  # the box as a row then a column (the mean over a row's valid pixels, then over rows')
    blurred = F.avg_pool2d(weight, (1, side), stride=1, padding=(0, radius), count_include_pad=False)
    blurred = F.avg_pool2d(blurred, (side, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return torch.maximum(weight, blurred)[0, 0]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right up to multiples of `multiple` by reflection (replicate when the image is
    too small to reflect); returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def fit_size(height: int, width: int, longest: int, multiple: int) -> tuple[int, int]:
    """The size that scales (height, width) so its longest side is at most `longest`, rounded to `multiple`."""
    scale = min(1.0, longest / max(height, width))
    return (max(multiple, round(height * scale / multiple) * multiple),
            max(multiple, round(width * scale / multiple) * multiple))


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize (B, C, H, W); antialiased when shrinking. Bicubic results are clamped to [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=shrinking).clamp_(0, 1)


def shrink_mask(hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (H, W) bool hole so that every low-resolution pixel touching the hole is a hole (never lose any)."""
    h, w = hole.shape
    if (h, w) == tuple(size):
        return hole
    area = F.interpolate(hole[None, None].float(), size=size, mode="area")
    return area[0, 0] > 0


# Detail restoration (`upscale_with_detail`): patches of DETAIL_PATCH px at the network's scale, on a grid of that
# stride, each spanning two cells so that neighbours overlap by half and blend without seams.
DETAIL_PATCH = 8
# Windows scaled down by at most this factor are left as the network filled them: there the scaled-up fill is soft but
# scores better on PSNR and SSIM than with borrowed texture, and beyond it the fill is a visibly blurred patch
# (docs/quality.md, "Serving choices", has the measurements).
DETAIL_MIN_SCALE = 2.0
# How far (in patch cells at the network's scale) the surroundings that set a fill's detail strength reach: the
# weight of a known patch falls as a Gaussian of its distance with this deviation.
DETAIL_REACH = 1.0
# How many of a fill patch's best-matching known patches its detail may come from (one drawn at random).
DETAIL_CHOICES = 4
# Detail weaker than one grey level counts as one grey level: flat areas (zero detail) must not dominate the log average.
DETAIL_FLOOR = 1 / 255
# What a known patch's detail being e times stronger than the detail around the fill costs in its match, in RMS colour
# difference (0 to 1) over the patch: 0.03 (8 grey levels) lets a patch of a closer strength win over a closer colour.
DETAIL_EXCESS_COST = 0.03


def upscale_with_detail(window: torch.Tensor, hole: torch.Tensor, small: torch.Tensor, small_hole: torch.Tensor,
                        prediction: torch.Tensor) -> torch.Tensor:
    """Scale the network's fill of a window back to full size and add the fine detail that scaling the window down
    removed, borrowed from the window's own known pixels (contextual residual aggregation, Yi et al., CVPR 2020).

    `window` (3, H, W) at full size and `hole` (H, W) bool; `small` (3, h, w) and `small_hole` (h, w) the same scaled
    down for the network (`resize`, `shrink_mask`: what the pipeline already made); `prediction` (3, h, w) the
    network's output for them. Returns (3, H, W): the prediction scaled up as it is when the window was scaled down by at most
    DETAIL_MIN_SCALE; else, inside the hole, the upscaled fill plus, for each patch, the detail layer
    (full size minus its scaled-down-and-up copy) of the known patch whose scaled-down content looks most like the
    fill there. Overlapping patches blend with variance-preserving weights, so the texture keeps its contrast."""
    _, height, width = window.shape
    _, h, w = prediction.shape
    # How far the window was scaled down: its longest side's factor (rounding each side to a multiple of 16 can make
    # one side's factor a little larger; that is not a window scaled down further).
    if max(height, width) / max(h, w) <= DETAIL_MIN_SCALE or not hole.any():
        return resize(prediction[None], (height, width))[0]
    scale = max(height / h, width / w)
    fill = torch.where(small_hole, prediction, small)  # what the network saw, its fill in the hole
    upscaled = resize(fill[None], (height, width))[0]
    detail = window - resize(small[None], (height, width))[0]
    # Detail is trustworthy only where the scaled copy never mixed in hole pixels (bicubic reaches 2 low-res px).
    untrusted = dilate(hole, int(np.ceil(2.5 * scale)))

    cell, span = DETAIL_PATCH, 2 * DETAIL_PATCH
    rows_n, cols_n = -(-h // cell), -(-w // cell)
    size = int(np.ceil(span * scale))  # a patch's side at full size
    pad = size  # patches may run past the window: pad everything by a patch
    top = ((torch.arange(rows_n) * cell - cell // 2) * height / h).round().long() + pad
    left = ((torch.arange(cols_n) * cell - cell // 2) * width / w).round().long() + pad

    def patch_sums(padded: torch.Tensor) -> torch.Tensor:  # (patches,): sums of a map padded by `pad` over each box
        table = F.pad(padded.cumsum(0, dtype=padded.dtype).cumsum(1, dtype=padded.dtype), (1, 0, 1, 0))
        t, l = top[:, None], left[None, :]
        return (table[t + size, l + size] - table[t, l + size] - table[t + size, l] + table[t, l]).flatten()

    def box_any(mask: torch.Tensor, outside: bool) -> torch.Tensor:  # (patches,): a True pixel in the patch's box?
        # (int32 counts: exact up to 2 gigapixels, and half the memory traffic of int64 on a 16-MP window)
        return patch_sums(F.pad(mask.int(), (pad,) * 4, value=int(outside))) > 0

    targets = box_any(hole, outside=False).nonzero()[:, 0]  # every patch touching the hole gets detail
    sources = (~box_any(untrusted, outside=True)).nonzero()[:, 0]  # whole patches of trustworthy detail
    if len(sources) == 0:
        return upscaled
    # Match at the network's scale: each patch's span of the filled small window, colour and structure.
    lead = cell // 2
    padded_fill = F.pad(fill[None], (lead, cols_n * cell - w + lead, lead, rows_n * cell - h + lead), mode="replicate")
    looks = F.unfold(padded_fill, kernel_size=span, stride=cell)[0].T  # (patches, 3 * span²)
    # A smooth fill looks like any patch of its colour, however textured, so the look-alike may be the window's grass
    # pasted over its sky. So each fill patch also knows the strength of the known detail around it: per cell, the
    # trusted pixels' RMS detail, averaged over cells in the log domain (strength is a scale: a strong texture a few
    # cells away must not outweigh the flat photo beside the hole) with weights falling off as a Gaussian of the
    # distance (DETAIL_REACH cells) and growing with each cell's trusted pixels.
    detail_energy = detail.square().mean(0)
    strength = patch_sums(F.pad(detail_energy.double(), (pad,) * 4)).float().sqrt() / size  # each patch's RMS detail
    trusted = (~untrusted).float()
    cell_energy = F.adaptive_avg_pool2d((detail_energy * trusted)[None], (rows_n, cols_n)).flatten()
    cell_trust = F.adaptive_avg_pool2d(trusted[None], (rows_n, cols_n)).flatten()
    known = (cell_trust > 0).nonzero()[:, 0]
    cell_log_rms = 0.5 * (cell_energy[known] / cell_trust[known]).clamp_min(DETAIL_FLOOR**2).log()
    cells = torch.stack(torch.meshgrid(torch.arange(rows_n), torch.arange(cols_n), indexing="ij"), -1)
    cells = cells.flatten(0, 1).float()
    log_around = torch.cat([torch.softmax(-torch.cdist(cells[part], cells[known]).square() / (2 * DETAIL_REACH**2)
                                          + cell_trust[known].log(), dim=1) @ cell_log_rms
                            for part in targets.split(1024)])

    # The match: how unlike the fill the known patch looks (RMS over its span), plus DETAIL_EXCESS_COST per unit of
    # log strength by which its detail exceeds the detail around the fill. Each fill patch then takes one of its
    # DETAIL_CHOICES best matches, drawn at random (seeded: the same photo gives the same result): with the single
    # best, neighbouring patches of a smooth fill all take the same known patch, and its texture repeats at the grid's
    # period, a regular pattern the eye picks out at once.
    candidates = looks[sources]
    log_strength = strength[sources].clamp_min(DETAIL_FLOOR).log()
    choices = min(DETAIL_CHOICES, len(sources))
    draw = torch.randint(choices, (len(targets),), generator=torch.Generator().manual_seed(0))
    chosen = []
    for part, part_log_around, pick in zip(targets.split(1024), log_around.split(1024), draw.split(1024)):
        cost = torch.cdist(looks[part], candidates) / looks.shape[1] ** 0.5  # in blocks: bounded memory
        cost += DETAIL_EXCESS_COST * (log_strength[None, :] - part_log_around[:, None]).clamp_min(0)
        chosen.append(sources[cost.topk(choices, dim=1, largest=False).indices.gather(1, pick[:, None])[:, 0]])
    chosen = torch.cat(chosen)
    # And what is borrowed is never stronger than the detail around it.
    gains = (log_around.exp() / strength[chosen].clamp_min(1e-6)).clamp_(max=1.0)

    # Raised-cosine weights, and a sum normalised by the root of the summed squared weights: blending independent
    # textures by plain averaging would halve their contrast where patches overlap.
    taper = torch.hann_window(size + 2, periodic=False)[1:-1]
    weight = taper[:, None] * taper[None, :]
    weight_squared = weight**2
    padded_detail = F.pad(detail, (pad,) * 4)
    canvas = torch.zeros_like(padded_detail)
    energy = torch.zeros_like(padded_detail[0])
    tops, lefts = top.tolist(), left.tolist()
    for target, source, gain in zip(targets.tolist(), chosen.tolist(), gains.tolist()):  # one patch at a time
        t, l = tops[target // cols_n], lefts[target % cols_n]
        st, sl = tops[source // cols_n], lefts[source % cols_n]
        canvas[:, t : t + size, l : l + size].add_(padded_detail[:, st : st + size, sl : sl + size] * weight, alpha=gain)
        energy[t : t + size, l : l + size] += weight_squared
    added = (canvas / energy.sqrt().clamp_min(1e-3))[:, pad : pad + height, pad : pad + width]
    return (upscaled + added).clamp_(0, 1)


def hole_radius(hole: torch.Tensor, percentile: float = 90) -> float:
    """How thick the hole is: the distance (px) from a hole pixel to the nearest known pixel that `percentile` % of
    hole pixels are within (half a stroke's width; 0 for no hole)."""
    from scipy import ndimage

    hole = hole.numpy()
    if not hole.any():
        return 0.0
    return float(np.percentile(ndimage.distance_transform_edt(hole)[hole], percentile))


def hole_depths(hole: torch.Tensor) -> np.ndarray:
    """(H, W) for each hole pixel its chessboard distance (px) to the nearest known pixel of the array (0 outside the
    hole): the metric in which RFR-Net's square partial-convolution windows grow the known region. Where the array
    has no known pixel at all, every hole pixel gets the array's longest side (farther than anything can reach)."""
    from scipy import ndimage

    array = hole.numpy()
    if array.all():
        return np.full(array.shape, max(array.shape), dtype=np.int32)
    return ndimage.distance_transform_cdt(array, metric="chessboard").astype(np.int32)


def smooth_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """(3, H, W): `image` with its hole filled by the smoothest surface through the colours on its boundary (the
    membrane: each hole pixel the mean of its four neighbours, the known pixels fixed; flat across the photo's
    border). It takes nothing from beyond the boundary: a hole in a white window comes back white, however dark the
    room behind the window (averages over ever larger blocks brought that darkness in, a grey blob)."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    array = hole.numpy()
    if not array.any() or array.all():  # nothing to fill, or no colour to fill it from
        return image.clone()
    height, width = array.shape
    ys, xs = np.nonzero(array)
    count = len(ys)
    index = np.full(array.shape, -1)
    index[ys, xs] = np.arange(count)
    colours = image.permute(1, 2, 0).double().numpy()
    neighbours, rows, cols = np.zeros(count), [np.arange(count)], [np.arange(count)]
    boundary = np.zeros((count, 3))
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        y, x = ys + dy, xs + dx
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        neighbours += inside
        me, y, x = np.flatnonzero(inside), y[inside], x[inside]
        other = index[y, x]
        rows.append(me[other >= 0])
        cols.append(other[other >= 0])
        boundary[me[other < 0]] += colours[y[other < 0], x[other < 0]]  # (no repeats in `me`: += adds all)
    values = np.concatenate([neighbours, -np.ones(sum(len(r) for r in rows[1:]))])
    system = sparse.csc_matrix((values, (np.concatenate(rows), np.concatenate(cols))), shape=(count, count))
    filled = image.clone()
    filled[:, ys, xs] = torch.from_numpy(spsolve(system, boundary).T).to(image.dtype)
    return filled


def low_pass(x: torch.Tensor, radius: int) -> torch.Tensor:
    """(C, H, W) blurred by three box filters of side 2·radius + 1 (close to a Gaussian of σ ≈ radius)."""
    x, side = x[None], 2 * radius + 1
    for _ in range(3):  # each box as a row then a column: 2·side operations per pixel instead of side²
        x = F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), (1, side), stride=1)
        x = F.avg_pool2d(x, (side, 1), stride=1)
    return x[0]


def anchor_colours(prediction: torch.Tensor, image: torch.Tensor, hole: torch.Tensor, depths: np.ndarray,
                   depth: int) -> torch.Tensor:
    """The network's fill of a deep hole blended into a smooth interpolation of the colours around the hole
    (`smooth_fill`, blurred by radius `depth`): the network's own at the hole's edge, the interpolation alone from
    `depth` px in (`depths`: `hole_depths(hole)`). Deep inside a compact hole RFR-Net's fill holds nothing from the
    photo, only a drift in colour (a flat photo's came back up to 34 levels off) and the fronts of its recurrent
    iterations, rings of colours the photo does not have (docs/large-images.md)."""
    weight = (torch.from_numpy(depths).float() / depth).clamp_(0, 1)
    return torch.lerp(prediction, low_pass(smooth_fill(image, hole), depth), weight).clamp_(0, 1)


def region_boxes(hole: torch.Tensor, margin: int, min_size: int) -> list[tuple[int, int, int, int]]:
    """Crop windows (top, left, bottom, right) covering every connected hole region plus `margin` px of context,
    at least `min_size` px on a side where the image allows; overlapping windows are merged."""
    from scipy import ndimage

    h, w = hole.shape
    labels, _ = ndimage.label(hole.numpy())
    boxes = []
    for sl in ndimage.find_objects(labels):
        top, bottom = _expand(sl[0].start, sl[0].stop, margin, min_size, h)
        left, right = _expand(sl[1].start, sl[1].stop, margin, min_size, w)
        boxes.append((top, left, bottom, right))
    merged = True
    while merged:  # merge until no two windows overlap
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes)


def _expand(start: int, stop: int, margin: int, min_size: int, limit: int) -> tuple[int, int]:
    start, stop = max(0, start - margin), min(limit, stop + margin)
    missing = min_size - (stop - start)
    if missing > 0:
        start = max(0, start - missing // 2)
        stop = min(limit, start + min_size)
        start = max(0, stop - min_size)
    return start, stop
