"""Test set-up: no network, a private Hugging Face cache, and helpers for the official fixtures in ../shared."""

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub: never touch the network, never read the user's cache.
_HF_HOME = tempfile.mkdtemp(prefix="rfr-test-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
sys.path.insert(0, str(REPO_ROOT))  # so tests can import benchmarks/ helpers

from benchmarks.official_reference import fixture_state_dict

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



@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A saved pipeline of the tiny test model (64² training resolution): read-only for the tests that use it."""
    from test_model import make_model

    from rfr_pipeline import RFRInpaintPipeline

    folder = tmp_path_factory.mktemp("tiny") / "pipe"
    RFRInpaintPipeline(rfrnet=make_model(sample_size=64)).save_pretrained(folder)
    return folder
