"""Numerical parity with the official RFR-Net code, on the fixtures it produced (../shared/fixtures)."""

import pytest
import torch

from rfr_pipeline import load_official_checkpoint
from rfr_pipeline.modeling_rfr import PartialConv2d
from tests.conftest import load_official_fixture, requires_shared

pytestmark = [requires_shared, pytest.mark.numerics]  # .ci/run repeats these on the AVX2 kernels


@pytest.fixture(scope="module", params=[0, 1], ids=["seed0-hole35", "seed1-hole54"])
def official(request, tmp_path_factory):
    fixture = load_official_fixture(request.param)
    # Load through a checkpoint file in the official format, as a user would.
    path = tmp_path_factory.mktemp("ckpt") / "official.pth"
    torch.save({"n_iter": 0, "generator": fixture["state_dict"], "optimizer_G": {}}, path)
    fixture["model"] = load_official_checkpoint(path)
    return fixture


def test_batch_of_two_matches_official_output(official):
    image = official["image"].repeat(2, 1, 1, 1)
    known = official["known"].repeat(2, 1, 1, 1)
    with torch.no_grad():
        output = official["model"](image, known)  # unmasked image: the model masks it itself
    for sample in output:
        torch.testing.assert_close(sample[None], official["output"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("form", PartialConv2d.FORMS)
def test_each_partial_convolution_form_matches_official_output(official, form, monkeypatch):
    """Whichever form the CPU timing picks for the trunk's convolutions (the FFT's rounding differs from oneDNN's
    direct sums, and the partial convolution's renormalisation scales it up at the hole's edge), the output is the
    official one."""
    from rfr_pipeline import cpu_forms

    monkeypatch.setattr(cpu_forms, "CPU_AUTOTUNE", True)  # (even under RFR_CPU_AUTOTUNE=0: the form is forced)
    monkeypatch.setattr(PartialConv2d, "FORMS", (form,))
    monkeypatch.setattr(cpu_forms, "_fastest_forms", {})
    image, known = official["image"], official["known"]
    with torch.no_grad():  # the official call: a masked image and a three-channel mask
        output = official["model"](image * known, known.repeat(1, 3, 1, 1))
    torch.testing.assert_close(output, official["output"], rtol=0, atol=1e-5)
    hole = official["hole"].float()
    torch.testing.assert_close(output * hole + image * (1 - hole), official["comp"], rtol=0, atol=1e-5)
