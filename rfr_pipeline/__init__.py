"""RFR-Net image inpainting as a Hugging Face diffusers model and pipeline."""

from pathlib import Path

from diffusers import ModelMixin  # noqa: F401  diffusers' loader looks up the base class on the library itself

from ._diffusers_registration import register as _register
from .convert import load_official_checkpoint
from .modeling_rfr import RFRNet
from .pipeline_rfr_inpaint import RFRInpaintPipeline

_register(RFRInpaintPipeline)

# The pipeline folder shipped inside the package (trained by the project), used when no model is named.
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "default_model")

__all__ = ["DEFAULT_MODEL", "RFRInpaintPipeline", "RFRNet", "load_official_checkpoint"]
__version__ = "0.1.0"
