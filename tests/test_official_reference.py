"""The benchmark's restatement of the official code (tests/official_reference.py) must compute what the
official code computes, or the speed ratios we report would compare against the wrong thing. It also serves as a
second oracle for RFRNet on shapes the fixtures do not cover (non-square, batches)."""

import pytest
import torch

from rfr_pipeline import load_official_checkpoint
from tests.conftest import load_official_fixture, requires_shared
from tests.official_reference import OfficialRFRNet

pytestmark = pytest.mark.numerics  # .ci/run repeats these on the AVX2 kernels


@requires_shared
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_official_fixture(seed):
    fixture = load_official_fixture(seed)
    reference = OfficialRFRNet().eval()
    reference.load_state_dict(fixture["state_dict"], strict=True)
    known3 = fixture["known"].repeat(1, 3, 1, 1)
    with torch.no_grad():
        output = reference(fixture["image"] * known3, known3)
    torch.testing.assert_close(output, fixture["output"], rtol=0, atol=1e-5)


def test_rfrnet_matches_reference_on_non_square_batch():
    torch.manual_seed(0)
    reference = OfficialRFRNet()
    with torch.no_grad():  # non-trivial BatchNorm statistics and a strong attention path
        for name, buffer in reference.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
        reference.RFRModule.dec_3[1].weight.uniform_(5, 10)
        reference.RFRModule.att.att.ratio.fill_(0.3)
    reference.eval()
    model = load_official_checkpoint(reference.state_dict())

    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 128, 208, generator=g)
    known = torch.ones(2, 1, 128, 208)
    known[0, :, 24:80, 40:130] = 0
    known[1, :, 64:120, 8:60] = 0
    known3 = known.repeat(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference(image * known3, known3)
        output = model(image, known)
    torch.testing.assert_close(output, expected, rtol=0, atol=1e-5)
