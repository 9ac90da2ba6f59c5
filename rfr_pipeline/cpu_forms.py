"""Faster forms of RFR-Net's convolutions for CPU inference, and the per-machine choice among them.

The network in `modeling_rfr.py` is written as the paper and the official code compute it. Two of its layers have
equivalent forms that run faster on a CPU, by an amount that depends on the machine:

  * the trunk's 7×7 partial convolutions (13 of every forward's convolutions, a third of its arithmetic) through the
    FFT (`fft_conv2d`, overlap-save): faster than oneDNN's direct kernel on AVX2 and AVX-512 and closer to the exact
    result (its rounding grows with log n, not with the 3,136 terms of each window);
  * the transposed convolutions (kernel 4, stride 2) on a channels-last input, as four 2×2 convolutions, one per
    output phase, or as one 2×2 convolution with the four phases' kernels side by side.

`FastConv2d` and `FastConvTranspose2d` are drop-in `nn.Conv2d` / `nn.ConvTranspose2d` that, during CPU inference
(no autograd, not exporting), time their forms once per shape and run the fastest (`FastestFormOnCPU`); in training,
on other devices and in exported graphs they are PyTorch's own layers. benchmarks/layer_forms.py times each form.

How the choice is made on each machine: as cudnn.benchmark does, each layer shape (with dtype and thread count) is
timed at first use, each form warmed up once and then the best of two calls kept. The choices are stored in a small
JSON file per machine (named by a hash of the CPU model, architecture, torch version, the ISA torch's kernels use
and the oneDNN/MKL ISA switches), so later processes on the same machine do not time again: a one-photo command
line would otherwise spend about 2 s timing, more than the network takes. Switches: RFR_CPU_AUTOTUNE=0 (every layer
runs the plain form); RFR_CACHE_DIR (where the file lives; default $XDG_CACHE_HOME or ~/.cache, then rfr_pipeline;
empty: keep the choices in memory only).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def exporting() -> bool:
    """Tracing for ONNX or torch.export: the CPU fast paths below give way to plain forms there, because a graph
    cannot hold their Python-side caches, and ONNX's Conv needs a fixed group count where they use the batch size."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


# Why time at all: the fastest form depends on the CPU, the kernels oneDNN has for its instruction set, and the
# thread count. On one AVX-512 Xeon the four-phase transposed convolution is 1.4× faster than the plain one for the
# 1024-channel decoder, on an AVX2 EPYC 2.4× slower (benchmarks/layer_forms.py).
CPU_AUTOTUNE = os.environ.get("RFR_CPU_AUTOTUNE", "1") != "0"
_fastest_forms: dict[tuple, str] = {}  # (layer, channels, kernel, H, W, dtype, threads) → fastest form, this process
FORM_CACHE_DIR = (Path(os.environ["RFR_CACHE_DIR"]) if os.environ.get("RFR_CACHE_DIR")
                  else None if "RFR_CACHE_DIR" in os.environ
                  else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rfr_pipeline")
_stored_forms: dict[str, str] | None = None  # the file's choices for this machine, read at the first timing


class FastestFormOnCPU:
    """Mixin for a convolution with several equivalent forms: `FORMS` (the first, "plain", is PyTorch's own layer),
    `forward_as(form, x)`, and `_forms_for(x)` (the forms that apply to this input). With autograd on (training),
    on other devices and while exporting: the plain form."""

    FORMS: tuple[str, ...] = ("plain",)

    def _forms_for(self, x: torch.Tensor) -> tuple[str, ...]:
        return self.FORMS

    def _fastest_form_forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.is_grad_enabled() or exporting() or not CPU_AUTOTUNE:
            return self.forward_as("plain", x)
        forms = self._forms_for(x)
        if len(forms) == 1:
            return self.forward_as(forms[0], x)
        key = (type(self).__name__, self.in_channels, self.out_channels, self.kernel_size, *x.shape[2:], x.dtype,
               torch.get_num_threads())
        if key in _fastest_forms:
            return self.forward_as(_fastest_forms[key], x)
        stored = _stored_form(key)
        if stored in forms:  # timed by an earlier process on this machine
            _fastest_forms[key] = stored
            return self.forward_as(stored, x)
        form, output = self._fastest_form(x, forms)
        _fastest_forms[key] = form
        _store_form(key, form)
        return output

    def _fastest_form(self, x: torch.Tensor, forms: Sequence[str]) -> tuple[str, torch.Tensor]:
        """Each form once to warm up (oneDNN builds its kernels then), then the best of two timed calls; the fastest
        form and its output (so the first call already returns what later ones will)."""
        best = None
        for form in forms:
            self.forward_as(form, x)
            for _ in range(2):
                start = time.perf_counter()
                output = self.forward_as(form, x)
                seconds = time.perf_counter() - start
                if best is None or seconds < best[0]:
                    best = (seconds, form, output)
        return best[1], best[2]


def _form_cache_file() -> Path | None:
    """This machine's file of timed choices: its name follows what the timings depend on (the CPU, the kernels
    PyTorch and oneDNN pick for its instruction set, and their switches), so another machine or torch never reads
    them."""
    if FORM_CACHE_DIR is None:
        return None
    import hashlib
    import platform

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    machine = [cpu, platform.machine(), torch.__version__, torch.backends.cpu.get_cpu_capability(),
               os.environ.get("ONEDNN_MAX_CPU_ISA", ""), os.environ.get("MKL_ENABLE_INSTRUCTIONS", "")]
    return FORM_CACHE_DIR / f"cpu-forms-{hashlib.sha1(repr(machine).encode()).hexdigest()[:16]}.json"


def _stored_form(key: tuple) -> str | None:
    global _stored_forms
    if _stored_forms is None:
        path = _form_cache_file()
        try:
            _stored_forms = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        except (OSError, ValueError):  # unreadable or half-written by hand: time again
            _stored_forms = {}
    return _stored_forms.get(repr(key))


def _store_form(key: tuple, form: str) -> None:
    """Add one choice to this machine's file (atomically; the file's choices are re-read first, so processes
    timing side by side keep each other's). Nowhere to write (a read-only home): kept in memory only."""
    from .atomic import atomic_file

    _stored_form(key)
    _stored_forms[repr(key)] = form
    path = _form_cache_file()
    if path is None:
        return
    try:
        on_disk = json.loads(path.read_text()) if path.is_file() else {}
        on_disk[repr(key)] = form
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(on_disk, indent=0, sort_keys=True))
    except (OSError, ValueError):
        pass


# -- convolution through the FFT (overlap-save) -------------------------------------------------------------------
# A stride-1 "same" convolution, cut into tiles of FFT_TILE² input pixels (each giving FFT_TILE − k + 1 outputs per
# side). Per frequency the product over channels is a small matrix product, done in real arithmetic
# (Y = W_re·X + W_im·(i·X)) as one batched GEMM over all tiles of the batch.
FFT_TILE = 32  # a power of two: measured fastest for 7×7 kernels at 64²–256² on AVX2 and AVX-512


def weight_spectrum(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the kernel's transform, (frequencies, C_out, C_in) each. Convolution layers
    correlate, so the transform is of the flipped kernel."""
    c_out, c_in = weight.shape[:2]
    spectrum = torch.fft.rfft2(weight.flip(-2, -1), s=(FFT_TILE, FFT_TILE)).permute(2, 3, 0, 1).reshape(-1, c_out, c_in)
    return spectrum.real.contiguous(), spectrum.imag.contiguous()


def fft_conv2d(x: torch.Tensor, spectrum: tuple[torch.Tensor, torch.Tensor], kernel_size: int) -> torch.Tensor:
    """conv2d(x, weight, padding=kernel_size // 2) for `spectrum = weight_spectrum(weight)`."""
    real, imaginary = spectrum
    b, c, h, w = x.shape
    n, k = FFT_TILE, kernel_size
    step = n - k + 1  # outputs per tile and side
    rows, cols = -(-h // step), -(-w // step)
    padded = F.pad(x, (k // 2, k // 2 + cols * step - w, k // 2, k // 2 + rows * step - h))
    tiles = padded.unfold(2, n, step).unfold(3, n, step)  # (B, C, rows, cols, n, n), overlapping by k − 1
    x_f = torch.fft.rfft2(tiles)  # (B, C, rows, cols, n, n/2 + 1)
    frequencies, tile_count = n * x_f.shape[-1], b * rows * cols
    x_f = x_f.permute(4, 5, 1, 0, 2, 3).reshape(frequencies, c, tile_count).contiguous()
    as_real = lambda z: torch.view_as_real(z).reshape(frequencies, c, 2 * tile_count)
    y_f = torch.baddbmm(torch.bmm(real, as_real(x_f)), imaginary, as_real(x_f * 1j))  # (F, C_out, 2·tiles)
    y_f = torch.view_as_complex(y_f.view(n, n // 2 + 1, -1, b, rows, cols, 2)).permute(3, 2, 4, 5, 0, 1)
    # circular convolution with the flipped kernel: the tile's valid outputs start at k − 1
    y = torch.fft.irfft2(y_f.contiguous(), s=(n, n))[..., k - 1 :, k - 1 :]  # (B, C_out, rows, cols, step, step)
    y = y.permute(0, 1, 2, 4, 3, 5).reshape(b, -1, rows * step, cols * step)
    return y[:, :, :h, :w]


class FastConv2d(FastestFormOnCPU, nn.Conv2d):
    """`nn.Conv2d` that may run through the FFT (`fft_conv2d`) during CPU inference, where that is faster. The layer
    then keeps its kernel's transform (18 MB for 64→64 at 7×7) beside the weight."""

    FORMS = ("plain", "fft")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._spectrum_cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fastest_form_forward(x)

    def _forms_for(self, x: torch.Tensor) -> tuple[str, ...]:
        # The FFT form: stride-1 "same" convolutions without groups, dilation or bias, with kernels large enough to
        # pay off and small enough for the tile; torch.fft runs in float32 and float64 on the CPU.
        k = self.kernel_size[0]
        fft = (self.stride == (1, 1) and self.padding == (k // 2, k // 2) and self.kernel_size == (k, k)
               and self.groups == 1 and self.dilation == (1, 1) and self.bias is None and 5 <= k <= FFT_TILE // 2)
        return self.FORMS if fft and x.dtype in (torch.float32, torch.float64) else ("plain",)

    def forward_as(self, form: str, x: torch.Tensor) -> torch.Tensor:
        if form == "fft":
            return fft_conv2d(x, self._weight_spectrum(), self.kernel_size[0])
        return nn.Conv2d.forward(self, x)

    def _weight_spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`fft_conv2d`'s transform of the weight; rebuilt whenever the weight changes (new storage or in place)."""
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype)
        if self._spectrum_cache is None or self._spectrum_cache[0] != key:
            self._spectrum_cache = (key, weight_spectrum(self.weight.detach()))
        return self._spectrum_cache[1]


class FastConvTranspose2d(FastestFormOnCPU, nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` with kernel 4, stride 2, padding 1 (doubles H and W), that may run during CPU inference on
    a channels-last input, as four 2×2 convolutions, one per output phase, or as one 2×2 convolution with the four
    phases' kernels side by side (one larger matrix product that computes one extra row and column per phase)."""

    FORMS = ("plain", "channels-last", "phase", "phases-in-one")
    # kernel rows (columns) that reach even / odd output rows (columns), in the order the 2×2 window meets them
    _PHASE_TAPS = ((3, 1), (2, 0))

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self._phase_cache: tuple | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fastest_form_forward(x)

    def forward_as(self, form: str, x: torch.Tensor) -> torch.Tensor:
        if form == "phase":
            return self._phase_forward(x)
        if form == "phases-in-one":
            return self._phases_in_one_forward(x)
        if form == "channels-last":
            return nn.ConvTranspose2d.forward(self, x.contiguous(memory_format=torch.channels_last)).contiguous()
        return nn.ConvTranspose2d.forward(self, x)

    def _phase_kernels(self) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
        """kernels[a][c] for output rows 2r + a, columns 2s + c; and the four side by side (4·C_out, C_in, 2, 2).
        Derived from the weight; rebuilt whenever the weight changes (new storage or an in-place update)."""
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype)
        cached = self._phase_cache
        if cached is None or cached[0] != key:
            w = self.weight.detach()
            side_by_side = torch.cat([w[:, :, list(rows)][:, :, :, list(cols)].transpose(0, 1)
                                      for rows in self._PHASE_TAPS for cols in self._PHASE_TAPS])
            quarters = side_by_side.chunk(4)  # contiguous views: the weights are held once
            kernels = [[quarters[2 * a + c] for c in range(2)] for a in range(2)]
            cached = self._phase_cache = (key, (kernels, side_by_side))
        return cached[1]

    def _interleave(self, phase) -> torch.Tensor:
        """The full output from `phase(a, c)`, the (B, C_out, H, W) values at rows 2r + a, columns 2s + c."""
        rows = [torch.stack([phase(a, c) for c in range(2)], dim=-1) for a in range(2)]  # (B, C, H, W, 2) each
        b, _, h, w, _ = rows[0].shape
        return torch.stack(rows, dim=3).reshape(b, self.out_channels, 2 * h, 2 * w)

    def _phase_forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1))
        kernels, _ = self._phase_kernels()
        return self._interleave(lambda a, c: F.conv2d(padded[:, :, a : a + h + 1, c : c + w + 1], kernels[a][c]))

    def _phases_in_one_forward(self, x: torch.Tensor) -> torch.Tensor:
        # Phase (a, c)'s window starts at padded row r + a, column s + c: the one (H+1)×(W+1) output holds them all.
        h, w = x.shape[2:]
        _, side_by_side = self._phase_kernels()
        outputs = F.conv2d(F.pad(x, (1, 1, 1, 1)), side_by_side).unflatten(1, (4, self.out_channels))
        return self._interleave(lambda a, c: outputs[:, 2 * a + c, :, a : a + h, c : c + w])
