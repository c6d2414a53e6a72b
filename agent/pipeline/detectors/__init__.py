"""Detectors: score windows or rows of a line. Pure apart from onnxruntime inference."""
