"""ONNX export and onnxruntime inference: scripts/export_onnx.py, rfr_pipeline.onnx_model, RFRInpaintPipeline.from_onnx.

Exporting takes tens of seconds, so each file is exported once per module and shared."""

import contextlib
import filecmp
import io
import json
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from rfr_pipeline import FACES_MODEL, RFRInpaintPipeline, load_official_checkpoint
from tests.conftest import REPO_ROOT, load_official_fixture, requires_shared

onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed")
pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")

from rfr_pipeline.onnx_model import ONNXRFRNet, export_onnx, read_metadata
from scripts import export_onnx as export_script


@pytest.fixture(scope="module")
def faces_onnx(tmp_path_factory):
    """The embedded face model, exported by the command line as a user would."""
    path = tmp_path_factory.mktemp("onnx") / "faces.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert export_script.main(["--model", "faces", "--output", str(path)]) == 0
    difference = float(printed.getvalue().rsplit("largest difference ", 1)[1])
    assert difference < 1e-4, printed.getvalue()  # the script checked the file against PyTorch
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The converted official fixture model (the paper's configuration) and its ONNX file."""
    fixture = load_official_fixture(0)
    checkpoint = tmp_path_factory.mktemp("official") / "official.pth"
    torch.save({"n_iter": 0, "generator": fixture["state_dict"], "optimizer_G": {}}, checkpoint)
    fixture["model"] = load_official_checkpoint(checkpoint)
    fixture["onnx"] = export_onnx(fixture["model"], checkpoint.with_suffix(".onnx"))
    return fixture


def test_the_file_is_valid_dynamic_and_records_its_serving_defaults(faces_onnx):
    onnx.checker.check_model(str(faces_onnx), full_check=True)
    model = onnx.load(str(faces_onnx))
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert list(inputs) == ["image", "known_mask"] and [o.name for o in model.graph.output] == ["output"]
    assert inputs["image"][1] == 3 and inputs["known_mask"][1] == 1
    assert all(isinstance(d, str) for d in (*inputs["image"][::2], inputs["image"][3]))  # B, H, W: symbolic
    assert not any(p.key.startswith("pkg.torch") for node in model.graph.node for p in node.metadata_props)
    pipe = RFRInpaintPipeline.from_pretrained(FACES_MODEL)
    metadata = read_metadata(faces_onnx)
    assert metadata["default_strategy"] == pipe.config.default_strategy
    assert metadata["default_working_size"] == pipe.config.default_working_size
    assert metadata["default_flip_average"] == pipe.config.default_flip_average
    assert metadata["config"]["sample_size"] == pipe.rfrnet.config.sample_size


def test_exports_are_deterministic_leave_the_model_as_it_was_and_fp16_keeps_float32_io(make_model, tmp_path):
    model = make_model(num_iterations=1).train()  # one recurrence: a quick export
    first = export_onnx(model, tmp_path / "a.onnx", fp16=True)
    second = export_onnx(model, tmp_path / "b.onnx", fp16=True)
    assert filecmp.cmp(first, second, shallow=False), "two exports of one model differ"
    assert model.training and model.dtype == torch.float32  # exported in eval mode, from a copy
    weights = {t.data_type for t in onnx.load(str(first)).graph.initializer if len(t.dims) == 4}
    assert weights == {onnx.TensorProto.FLOAT16} and read_metadata(first)["fp16"] is True
    image, known = torch.rand(1, 3, 32, 48), (torch.rand(1, 1, 32, 48) > 0.3).float()
    with torch.no_grad():
        expected = model.eval()(image, known)
    network = ONNXRFRNet(first)
    got = network(image, known)
    assert got.dtype == torch.float32 and (got - expected).abs().max() < 2e-2
    with pytest.raises(ValueError, match="H and W multiples of 16"):
        network(image[..., :40], known[..., :40])
    with pytest.raises(ValueError, match=r"known_mask must be a \(1, 1, 32, 48\) tensor"):
        network(image, known[..., :32])


def test_an_export_in_another_process_is_the_same_file_byte_for_byte(faces_onnx, tmp_path):
    # torch.export numbers its shape symbols in an order that differs between processes; none of its notes are kept.
    again = tmp_path / "faces.onnx"
    subprocess.run([sys.executable, "scripts/export_onnx.py", "--model", "faces", "--output", str(again)],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)
    assert filecmp.cmp(faces_onnx, again, shallow=False), "two exports of the face model differ"
    proto = onnx.load(str(again))
    assert not proto.graph.metadata_props and [p.key for p in proto.metadata_props] == ["rfr_pipeline"]


@requires_shared  # (not a `numerics` test: the AVX2 switches steer PyTorch's kernels, not onnxruntime's)
def test_onnxruntime_reproduces_the_official_fixtures_from_one_file(official):
    network = ONNXRFRNet(official["onnx"])
    image, known, hole = official["image"], official["known"], official["hole"].float()
    output = network(image * known, known)  # 256², batch of one
    torch.testing.assert_close(output, official["output"], rtol=0, atol=1e-4)
    torch.testing.assert_close(output * hole + image * (1 - hole), official["comp"], rtol=0, atol=1e-4)
    # A non-square batch of two from the same file: the fixture and its mirror image, cropped to 256×192.
    images = torch.cat([image, image.flip(-1)])[..., 32:224]
    knowns = torch.cat([known, known.flip(-1)])[..., 32:224]
    with torch.no_grad():
        expected = official["model"](images, knowns)
    torch.testing.assert_close(network(images, knowns), expected, rtol=0, atol=1e-4)


def test_the_pipeline_on_onnxruntime_matches_the_pytorch_pipeline(faces_onnx, photo, box_mask):
    on_torch = RFRInpaintPipeline.from_pretrained(FACES_MODEL)
    on_onnx = RFRInpaintPipeline.from_onnx(faces_onnx)
    # onnxruntime uses PyTorch's thread count (this worker's share of the cores), not every core
    threads = on_onnx.rfrnet.session.get_session_options().intra_op_num_threads
    assert threads == torch.get_num_threads(), (threads, torch.get_num_threads())
    assert on_onnx.config.default_strategy == on_torch.config.default_strategy
    assert on_onnx.config.default_flip_average == on_torch.config.default_flip_average
    image, mask = photo(200, 300), box_mask(200, 300, ((40, 50, 120, 160), (150, 200, 190, 290)))
    for strategy in ("auto", "original", "resize", "crop"):
        expected = on_torch(image, mask, strategy=strategy, output_type="np").images
        got = on_onnx(image, mask, strategy=strategy, output_type="np").images
        assert np.abs(got - expected).max() <= 1 / 255, strategy
    batch = [photo(96, 128, seed=1), photo(96, 128, seed=2)]
    got = on_onnx(batch, box_mask(), batch_size=2, output_type="np").images
    expected = on_torch(batch, box_mask(), batch_size=2, output_type="np").images
    assert got.shape == (2, 96, 128, 3) and np.abs(got - expected).max() <= 1 / 255


def test_bad_files_and_arguments_are_refused_clearly(tmp_path, capsys):
    with pytest.raises(ValueError, match="does not exist: expected an ONNX file"):
        ONNXRFRNet(tmp_path / "missing.onnx")
    foreign = tmp_path / "foreign.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), foreign)
    with pytest.raises(ValueError, match="not exported by rfr_pipeline"):
        RFRInpaintPipeline.from_onnx(foreign)
    with pytest.raises(ValueError, match="takes an RFRNet or an RFRInpaintPipeline holding one, got str"):
        export_onnx("faces", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(SystemExit):
        export_script.main(["--model", "faces", "--output", str(tmp_path / "model.bin")])
    assert "expected a file name ending in .onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit) as missing:
        export_script.main(["--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "m.onnx")])
    assert missing.value.code == 2 and "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_the_benchmark_runs(make_model, tmp_path):
    from benchmarks import benchmark_onnx

    RFRInpaintPipeline(rfrnet=make_model(num_iterations=1, sample_size=32)).save_pretrained(tmp_path / "tiny")
    report = tmp_path / "report.json"
    assert benchmark_onnx.main(["--quick", "--models", str(tmp_path / "tiny"), "--threads", "1",
                                "--output", str(report)]) == 0
    [result] = json.loads(report.read_text())["results"]
    assert result["size"] == 64 and result["max_abs_difference"] < 1e-4
    assert result["median_s"]["pytorch"] > 0 and result["median_s"]["onnxruntime"] > 0


def test_the_readme_snippet_runs_as_written(faces_onnx, tmp_path):
    from tests.test_readme import blocks

    (snippet,) = [body for body in blocks("python") if "from_onnx" in body]
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    (tmp_path / "rfr-faces.onnx").symlink_to(faces_onnx)  # what the README's export command writes
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, check=False, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.asarray(PIL.Image.open(tmp_path / "onnx.png").convert("RGB"))
    photo = np.asarray(PIL.Image.open(REPO_ROOT / "examples" / "astronaut_photo.png").convert("RGB"))
    assert result.shape == photo.shape and not np.array_equal(result, photo)
