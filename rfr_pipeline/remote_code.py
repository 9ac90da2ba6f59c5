"""Saved pipelines that load with diffusers alone: the package's own source, copied beside the weights at save time.

diffusers' convention for components that are not part of diffusers: the repository ships their code, and
`trust_remote_code=True` lets diffusers import it. A folder written by `RFRInpaintPipeline.save_pretrained` holds

    model_index.json, rfrnet/{config.json, weights}     as always: the package loads these (`rfrnet` names the
                                                        library "rfr_pipeline", i.e. the installed package)
    rfr_inpaint.py + the pipeline's modules             the custom pipeline: custom_pipeline="rfr_inpaint"
    rfrnet/rfr_pipeline.py + the model's modules        the component "rfr_pipeline" where that package is absent

so that, in an environment with torch, diffusers and safetensors only,

    DiffusionPipeline.from_pretrained(folder_or_repo_id, custom_pipeline="rfr_inpaint", trust_remote_code=True)

gives the same pipeline. Where rfr-pipeline is installed it is the package, not the shipped copy, that runs
(`_diffusers_registration` sees to that), so the copy never shadows a newer or patched install.

diffusers copies into its module cache only the modules a shipped file imports directly (`from .name import ...`),
not what those import in turn; so each entry file below imports every module its code needs, and the modules are
copied unchanged.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

PIPELINE_ENTRY = "rfr_inpaint"  # custom_pipeline=PIPELINE_ENTRY
COMPONENT_ENTRY = "rfr_pipeline"  # the library model_index.json names for `rfrnet`: rfrnet/rfr_pipeline.py
# What each entry needs, in import order, as (module, a name it defines): the model's modules, then the pipeline's.
MODEL_MODULES = (("atomic", "atomic_file"), ("cpu_forms", "FastConv2d"), ("modeling_rfr", "RFRNet"))
PIPELINE_MODULES = MODEL_MODULES + (
    ("image_processing", "PreparedImage"),
    ("_diffusers_registration", "register"),
    ("onnx_model", "ONNXRFRNet"),  # (imported where the pipeline loads ONNX files: diffusers copies it either way)
    ("remote_code", "write_remote_code"),  # (imported where the pipeline saves: the same)
    ("pipeline_rfr_inpaint", "RFRInpaintPipeline"),
)
SOURCE = Path(__file__).parent


def _version() -> str:
    try:
        return importlib.metadata.version("rfr-pipeline")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _entry(modules, doc: str) -> str:
    imports = "\n".join(f"from .{module} import {name}  # noqa: F401" for module, name in modules)
    return f'"""{doc}\n\nWritten by rfr-pipeline {_version()} when this folder was saved; the modules beside it are its source."""\n\n{imports}\n'


def write_remote_code(folder: str | Path) -> list[Path]:
    """Copy the package's modules and write the two entry files into a saved pipeline folder; returns the files."""
    folder = Path(folder)
    written = []
    for target, modules, entry, doc in (
        (folder, PIPELINE_MODULES, PIPELINE_ENTRY,
         "RFRInpaintPipeline for diffusers without the rfr-pipeline package:\n\n"
         f'    DiffusionPipeline.from_pretrained(this_repo, custom_pipeline="{PIPELINE_ENTRY}", trust_remote_code=True)'),
        (folder / "rfrnet", MODEL_MODULES, COMPONENT_ENTRY,
         "RFRNet, the component model_index.json names [\"rfr_pipeline\", \"RFRNet\"], where that package is absent."),
    ):
        for module, _ in modules:
            path = target / f"{module}.py"
            path.write_text((SOURCE / f"{module}.py").read_text())
            written.append(path)
        path = target / f"{entry}.py"
        path.write_text(_entry(modules, doc))
        written.append(path)
    return written
