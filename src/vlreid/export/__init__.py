"""Models that leave the toolkit: ONNX with a preprocessing sidecar, and shareable folders.

- :mod:`vlreid.export.onnx_file`: ``reid export --format onnx`` (image encoder alone, dynamic
  batch, pinned opset) and its ``model.onnx.json`` sidecar.
- :mod:`vlreid.export.reference`: the sidecar's preprocessing in PIL + NumPy, for deployers.
- :mod:`vlreid.export.parity`: onnxruntime vs PyTorch on real images (features, top-10, batch).
- :mod:`vlreid.export.folder`: ``reid export --format folder`` (config.json, weights, model card).

Submodules are imported explicitly: onnx and onnxruntime are an optional extra
(``pip install 'vlreid[export]'``).
"""
