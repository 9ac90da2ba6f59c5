"""RFR-Net image inpainting as a Hugging Face diffusers model and pipeline.

The package imports lazily, as diffusers does: `import rfr_pipeline` and `rfr-inpaint --help` need neither torch nor
diffusers; `RFRNet`, `RFRInpaintPipeline` and `load_official_checkpoint` load them on first use.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ._diffusers_registration import register_when_diffusers_loads

# The pipeline folders shipped inside the package (trained by the project): a face model and a general-scene model.
FACES_MODEL = str(Path(__file__).resolve().parent / "faces_model")
SCENES_MODEL = str(Path(__file__).resolve().parent / "scenes_model")
# Used when no model is named: the one that serves arbitrary photos better (docs/quality.md, "Which embedded model is the default").
DEFAULT_MODEL = SCENES_MODEL
# Embedded models by the short names the command lines accept (`--model scenes`), the default first.
EMBEDDED_MODELS = {"scenes": SCENES_MODEL, "faces": FACES_MODEL}

# The image files the package reads (photos and masks, in training, evaluation and the command line) and writes, by
# suffix, with PIL's name for the format. One table, so a suffix works everywhere or nowhere.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF"}

_LAZY = {
    "RFRNet": "modeling_rfr",
    "RFRInpaintPipeline": "pipeline_rfr_inpaint",
    "load_official_checkpoint": "convert",
    "inpaint_folder": "batch",
    "ModelMixin": "modeling_rfr",  # diffusers' loader looks the base class up on the library itself
}
__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "FACES_MODEL", "IMAGE_FORMATS", "SCENES_MODEL", "RFRInpaintPipeline",
           "RFRNet", "inpaint_folder", "load_official_checkpoint"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    setattr(sys.modules[__name__], name, value)
    register_when_diffusers_loads()  # diffusers is loaded now
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# `DiffusionPipeline.from_pretrained(...)` must find our classes once `rfr_pipeline` is imported, whichever of the
# two packages comes first: register now if diffusers is loaded, else as soon as it is.
register_when_diffusers_loads()
