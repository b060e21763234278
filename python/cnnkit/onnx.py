"""``cnnkit.onnx.export(model, input_shape, path, opset=17)``: see :mod:`cnnkit.io.onnx_export`.

The onnx package is imported only when exporting (``pip install "cnnkit[onnx]"``).
"""

from .io.onnx_export import IR_VERSION, export

__all__ = ["IR_VERSION", "export"]
