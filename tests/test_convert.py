"""Loading official checkpoints: formats, the smaller-hole variant, and strictness."""

import pytest
import torch

from rfr_pipeline import RFRNet, load_official_checkpoint
from rfr_pipeline.convert import official_to_diffusers_key
from tests.official_reference import OfficialRFRNet


@pytest.fixture(scope="module")
def official_state_dict():
    torch.manual_seed(0)
    return OfficialRFRNet().state_dict()


def test_every_official_name_maps_onto_every_rfrnet_name(official_state_dict):
    mapped = {official_to_diffusers_key(k) for k in official_state_dict}
    assert len(official_state_dict) == 114
    assert mapped == set(RFRNet().state_dict())


@pytest.mark.parametrize("wrap", ["checkpoint", "bare", "dataparallel"])
def test_loads_every_checkpoint_layout_from_a_file(official_state_dict, wrap, tmp_path):
    if wrap == "checkpoint":
        payload = {"n_iter": 350000, "generator": official_state_dict, "optimizer_G": {"state": {}}}
    elif wrap == "bare":
        payload = official_state_dict
    else:
        payload = {"generator": {f"module.{k}": v for k, v in official_state_dict.items()}}
    path = tmp_path / "g.pth"
    torch.save(payload, path)
    model = load_official_checkpoint(path)
    assert not model.training and model.config.trunk_kernel_size == 7
    torch.testing.assert_close(model.feature_reasoning.decoders[0][0].weight,
                               official_state_dict["RFRModule.dec_5.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.stem_norm2.running_var, official_state_dict["bn20.running_var"], rtol=0, atol=0)


def test_detects_the_smaller_hole_variant(official_state_dict):
    variant = dict(official_state_dict)
    for name in ("Pconv2.weight", "Pconv21.weight", "Pconv22.weight"):
        variant[name] = torch.randn(64, 64, 5, 5)
    model = load_official_checkpoint({"generator": variant})
    assert model.config.trunk_kernel_size == 5
    assert sum(p.numel() for p in model.parameters()) == 30_929_153
    assert torch.equal(model.area_conv1.weight, variant["Pconv21.weight"])


def test_loads_in_a_requested_dtype(official_state_dict):
    model = load_official_checkpoint(official_state_dict, dtype=torch.float16)
    assert model.dtype == torch.float16


def test_missing_unexpected_and_mismatched_keys_are_listed(official_state_dict):
    broken = dict(official_state_dict)
    del broken["RFRModule.enc_4.1.running_var"]
    broken["RFRModule.extra.weight"] = torch.zeros(1)
    broken["out.weight"] = torch.zeros(3, 64, 5, 5)
    with pytest.raises(ValueError) as info:
        load_official_checkpoint(broken)
    message = str(info.value)
    assert "missing (1): feature_reasoning.encoders.3.1.running_var" in message
    assert "unexpected (1): RFRModule.extra.weight" in message
    assert "out_conv.weight: checkpoint (3, 64, 5, 5) vs model (3, 64, 3, 3)" in message


def test_refuses_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_official_checkpoint(text)
    with pytest.raises(FileNotFoundError):
        load_official_checkpoint(tmp_path / "absent.pth")
    other = tmp_path / "other.pth"
    torch.save({"weights": [1, 2, 3]}, other)
    with pytest.raises(ValueError, match="no RFR-Net state dict"):
        load_official_checkpoint(other)
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not an official RFR-Net generator"):
        load_official_checkpoint(other)


def test_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"generator": {"x": torch.nn.Linear(1, 1)}}, path)  # a module object, not tensors
    with pytest.raises(ValueError, match="not a PyTorch checkpoint that loads safely"):
        load_official_checkpoint(path)
