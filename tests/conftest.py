"""Test set-up: no network, a private Hugging Face cache, and helpers for the official fixtures in ../shared."""

import os
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub: never touch the network, never read the user's cache.
_HF_HOME = tempfile.mkdtemp(prefix="rfr-test-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# The CPU forms' timed choices (rfr_pipeline.cpu_forms): a private file, never the user's ~/.cache.
os.environ["RFR_CACHE_DIR"] = tempfile.mkdtemp(prefix="rfr-test-cache-")

# Under pytest-xdist, share the cores between the workers (and the subprocesses they start): OpenMP threads that
# outnumber the cores spin against each other, and tiny test tensors gain nothing from a second thread.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn

from tests.official_reference import fixture_state_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"

requires_shared = pytest.mark.skipif(
    not (FIXTURES / "official_parity_seed0.pt").is_file(),
    reason="../shared/fixtures (outputs of the official RFR-Net code) is not present in this checkout",
)


FLOAT32_EPS = torch.finfo(torch.float32).eps


def assert_equal_up_to_rounding(actual: torch.Tensor, expected: torch.Tensor, terms: int, magnitude=None) -> None:
    """`actual` and `expected` compute the same float32 sums of `terms` products in different orders (other kernels,
    other instruction sets: oneDNN and ATen pick theirs per CPU). Each order's rounding error is at most about
    terms · eps · (sum of the absolute products) (Higham's bound for any summation order), so that, not one
    machine's measured difference, is the tolerance. `magnitude` is that sum of absolute products, per element or
    as one number; by default the largest |expected|, a fair stand-in when the products mostly share a sign."""
    if magnitude is None:
        magnitude = expected.abs().max()
    bound = terms * FLOAT32_EPS * torch.as_tensor(magnitude, dtype=torch.float32)
    error = (actual - expected).abs()
    worst = (error - bound).argmax()
    assert bool((error <= bound).all()), (
        f"differs by {error.flatten()[worst].item():.3g} where float32 rounding of {terms} terms allows "
        f"{bound.expand_as(error).flatten()[worst].item():.3g}")


def load_official_fixture(seed: int) -> dict:
    """The fixture of the given seed, with its official state dict rebuilt as ../shared/README.md describes."""
    fixture = torch.load(FIXTURES / f"official_parity_seed{seed}.pt", weights_only=True)
    fixture["state_dict"] = fixture_state_dict(fixture)
    fixture["known"] = 1 - fixture["hole"].float()
    return fixture


# -- test data: factories as fixtures ---------------------------------------------------------------------------------

TINY_MODEL = {"trunk_channels": 8, "reasoning_channels": (8, 16, 16), "tail_channels": 8, "tail_bottleneck_channels": 2}


def _make_model(seed=0, **overrides):
    from rfr_pipeline import RFRNet

    torch.manual_seed(seed)
    model = RFRNet(**{**TINY_MODEL, **overrides})
    # Non-default BatchNorm statistics, so that eval mode is not an identity and mistakes show.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.7, 1.3)
                module.bias.uniform_(-0.2, 0.2)
        model.feature_reasoning.attention.ratio.fill_(0.4)
    return model.eval()


def _photo(height=96, width=128, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    array = np.clip(base + rng.integers(-20, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(array).convert(mode)


def _box_mask(height=96, width=128, boxes=((20, 30, 50, 70),)):
    mask = np.zeros((height, width), np.uint8)
    for top, left, bottom, right in boxes:
        mask[top:bottom, left:right] = 255
    return PIL.Image.fromarray(mask)


@pytest.fixture(scope="session")
def make_model():
    """make_model(seed=0, **RFRNet overrides): a tiny RFRNet in eval mode with non-trivial BatchNorm statistics."""
    return _make_model


@pytest.fixture(scope="session")
def photo():
    """photo(height=96, width=128, seed=0, mode="RGB"): a PIL photo of smooth gradients and noise."""
    return _photo


@pytest.fixture(scope="session")
def box_mask():
    """box_mask(height=96, width=128, boxes=((top, left, bottom, right), ...)): an L mask, white boxes = holes."""
    return _box_mask



@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A saved pipeline of the tiny test model (64² training resolution): read-only for the tests that use it."""
    from rfr_pipeline import RFRInpaintPipeline

    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    RFRInpaintPipeline(rfrnet=_make_model(sample_size=64)).save_pretrained(folder)
    return folder
