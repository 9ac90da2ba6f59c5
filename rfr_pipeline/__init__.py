"""RFR-Net image inpainting as a Hugging Face diffusers model and pipeline."""

from .convert import load_official_checkpoint
from .modeling_rfr import RFRNet

__all__ = ["RFRNet", "load_official_checkpoint"]
__version__ = "0.1.0"
