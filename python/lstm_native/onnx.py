"""ONNX export: ``lstm_native.onnx.export(model, path, opset=17, streaming=False)``; the graph, its streaming
form and its limits are described in lstm_native.onnx_export. The `onnx` package is imported only when exporting (pip install "lstm_native[onnx]")."""

from .onnx_export import export

__all__ = ["export"]
