"""RFR-Net image inpainting as a Hugging Face diffusers model and pipeline."""

from diffusers import ModelMixin  # noqa: F401  diffusers' loader looks up the base class on the library itself

from ._diffusers_registration import register as _register
from .convert import load_official_checkpoint
from .modeling_rfr import RFRNet
from .pipeline_rfr_inpaint import RFRInpaintPipeline

_register(RFRInpaintPipeline)

__all__ = ["RFRNet", "RFRInpaintPipeline", "load_official_checkpoint"]
__version__ = "0.1.0"
