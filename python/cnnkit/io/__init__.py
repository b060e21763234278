"""Reading and writing: checkpoints (safetensors), ONNX export, PyTorch weight interchange."""

from .checkpoint import load, save
from .interchange import from_torch_state_dict, to_torch_state_dict

__all__ = ["from_torch_state_dict", "load", "save", "to_torch_state_dict"]
