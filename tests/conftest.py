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


def load_official_fixture(seed: int) -> dict:
    """The fixture of the given seed, with its official state dict rebuilt as ../shared/README.md describes."""
    fixture = torch.load(FIXTURES / f"official_parity_seed{seed}.pt", weights_only=True)
    fixture["state_dict"] = fixture_state_dict(fixture)
    fixture["known"] = 1 - fixture["hole"].float()
    return fixture

