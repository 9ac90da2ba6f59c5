"""RFR-Net outside PyTorch: export the network to ONNX, and run an exported file with onnxruntime.

    from rfr_pipeline.onnx_model import export_onnx
    export_onnx(pipe, "rfr.onnx")                        # or scripts/export_onnx.py on the command line
    pipe = RFRInpaintPipeline.from_onnx("rfr.onnx")      # the same pipeline; the network runs on onnxruntime

The graph is `RFRNet.forward` in eval mode: inputs `image` (B, 3, H, W) float32 in [0, 1] and `known_mask`
(B, 1, H, W) float32, 1 = known, 0 = hole; output `output` (B, 3, H, W) float32, the raw prediction (composite it
yourself, or let the pipeline do it). B, H and W are dynamic (H and W multiples of 16). The file also records the
network's training resolution and its pipeline's serving defaults (ONNX metadata), so `from_onnx` serves it as
`from_pretrained` serves the folder it came from. Needs the `[onnx]` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_file
from .modeling_rfr import SIZE_MULTIPLE, RFRNet, known_regions

INPUT_NAMES = ("image", "known_mask")
OUTPUT_NAME = "output"
DEFAULT_OPSET = 18
METADATA_KEY = "rfr_pipeline"  # JSON: the RFRNet config and the pipeline's serving defaults


def export_onnx(model, path: str | Path, opset: int = DEFAULT_OPSET, fp16: bool = False,
                default_strategy: str = "auto", default_working_size: int | None = None,
                default_flip_average: bool = False) -> Path:
    """Write `model` (an `RFRNet`, or an `RFRInpaintPipeline` whose serving defaults are recorded too) to `path`
    as ONNX, checked by `onnx.checker`, atomically. With `fp16` the weights and arithmetic are float16 (about half
    the file, for GPUs and onnxruntime-web) while the inputs and output stay float32. Returns the path."""
    import onnx

    if not isinstance(model, RFRNet):  # a pipeline
        if not isinstance(getattr(model, "rfrnet", None), RFRNet):
            raise ValueError(f"export_onnx takes an RFRNet or an RFRInpaintPipeline holding one, got "
                             f"{type(model).__name__}")
        default_strategy = model.config.default_strategy
        default_working_size = model.config.default_working_size
        default_flip_average = model.config.default_flip_average
        model = model.rfrnet
    # A copy in eval mode and float32 on the CPU: the caller's model is left as it was.
    network = copy.deepcopy(model).to("cpu", torch.float32).eval()
    wrapped = _Float16Network(network.half()).eval() if fp16 else network
    batch = torch.export.Dim("batch", min=1)
    height = SIZE_MULTIPLE * torch.export.Dim("height_16", min=1)
    width = SIZE_MULTIPLE * torch.export.Dim("width_16", min=1)
    dims = {0: batch, 2: height, 3: width}
    example = (torch.rand(2, 3, 64, 48), (torch.rand(2, 1, 64, 48) > 0.3).float())
    # No ONNX-level optimisation: onnxscript's constant folding drops the partial convolutions' `+ 1e-8` (as if it
    # were 0), which turns every window without known pixels into 1/0 = inf and the output into NaN. onnxruntime
    # optimises the graph itself when it loads it.
    with torch.no_grad(), network.value_checks(False):  # value checks are data-dependent: no place in a graph
        program = torch.onnx.export(wrapped, example, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                                    dynamic_shapes={"image": dims, "known_mask": dims}, opset_version=opset,
                                    dynamo=True, external_data=False, optimize=False, verbose=False)
    proto = program.model_proto
    # The exporter's notes, none needed to run: stack traces with this machine's paths and counters (on nodes),
    # torch.export's signature and shape constraints, whose symbols are numbered in an order that differs between
    # processes (on the graph), original names (on inputs, outputs, values). Without them, every export is the same
    # file byte for byte.
    for value in [*proto.graph.node, *proto.graph.input, *proto.graph.output, *proto.graph.value_info,
                  *proto.graph.initializer, proto.graph]:
        del value.metadata_props[:]
    config = {k: v for k, v in network.config.items() if not k.startswith("_")}
    metadata = {"config": config, "default_strategy": default_strategy,
                "default_working_size": default_working_size, "default_flip_average": default_flip_average,
                "fp16": fp16}
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata, sort_keys=True, default=list))
    proto.producer_name = "rfr_pipeline"
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    with atomic_file(path) as tmp:
        onnx.save_model(proto, tmp, format="protobuf")  # named: the temporary's `.tmp` name says nothing
    return path


class _Float16Network(torch.nn.Module):
    """A float16 network behind float32 inputs and output."""

    def __init__(self, network: RFRNet):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor, known_mask: torch.Tensor) -> torch.Tensor:
        return self.network(image.half(), known_mask).float()


def read_metadata(path: str | Path) -> dict:
    """What `export_onnx` recorded in the file (without loading its weights)."""
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    found = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in found:
        raise ValueError(f"{path} was not exported by rfr_pipeline (no {METADATA_KEY!r} metadata): export it with "
                         "scripts/export_onnx.py")
    return json.loads(found[METADATA_KEY])


class _Config(dict):
    """The exported network's config, read as `rfrnet.config.sample_size` is on an `RFRNet`."""

    __getattr__ = dict.__getitem__


class ONNXRFRNet:
    """An exported RFR-Net on onnxruntime, usable where the pipeline uses its `RFRNet`: called with (image,
    known_mask) tensors, it returns the prediction as a tensor. It runs where its execution providers run (the CPU by
    default; `providers=["CUDAExecutionProvider", "CPUExecutionProvider"]` for onnxruntime-gpu), so tensors go in
    and come out on the CPU. Without `session_options`, onnxruntime uses as many threads as PyTorch does here
    (`torch.get_num_threads()`, which follows `OMP_NUM_THREADS` and `torch.set_num_threads`), not its own default of
    every core, so one setting governs both routes and processes that share a machine do not crowd each other out."""

    def __init__(self, path: str | Path, providers: list | None = None, session_options=None):
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path} does not exist: expected an ONNX file from scripts/export_onnx.py")
        metadata = read_metadata(self.path)
        self.config = _Config(metadata["config"])
        self.default_strategy = metadata["default_strategy"]
        self.default_working_size = metadata["default_working_size"]
        self.default_flip_average = metadata.get("default_flip_average", False)  # older exports do not record it
        if session_options is None:
            session_options = onnxruntime.SessionOptions()
            session_options.intra_op_num_threads, session_options.inter_op_num_threads = torch.get_num_threads(), 1
        self.session = onnxruntime.InferenceSession(str(self.path), sess_options=session_options,
                                                    providers=providers or ["CPUExecutionProvider"])
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def __call__(self, image: torch.Tensor, known_mask: torch.Tensor, on_iteration=None) -> torch.Tensor:
        """`on_iteration` as `RFRNet.forward`'s: the graph does not show its iterations, so after the run each is
        reported with its region from `known_regions` (equal to the network's own, tests/test_large_holes.py)."""
        b, _, h, w = image.shape if image.ndim == 4 else (0, 0, 0, 0)
        if image.ndim != 4 or image.shape[1] != 3 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"image must be a (B, 3, H, W) tensor with H and W multiples of {SIZE_MULTIPLE}, got "
                             f"{tuple(image.shape)}")
        if known_mask.ndim != 4 or known_mask.shape[1] not in (1, 3) or known_mask.shape[0] != b \
                or tuple(known_mask.shape[2:]) != (h, w):
            raise ValueError(f"known_mask must be a ({b}, 1, {h}, {w}) tensor (1 = known), got "
                             f"{tuple(known_mask.shape)}")
        arrays = (image.detach().cpu().float().numpy(), known_mask[:, :1].detach().cpu().float().numpy())
        (output,) = self.session.run([OUTPUT_NAME], dict(zip(INPUT_NAMES, arrays)))
        if on_iteration is not None:
            regions = known_regions(known_mask[:, :1].detach().cpu().float(), self.config.trunk_kernel_size,
                                    self.config.num_iterations)
            for iteration, region in enumerate(regions[1:]):
                on_iteration(iteration, region)
        return torch.from_numpy(np.asarray(output))

    def __repr__(self) -> str:
        return f"ONNXRFRNet({str(self.path)!r}, providers={self.session.get_providers()})"
