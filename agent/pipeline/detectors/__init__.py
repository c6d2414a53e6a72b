"""Detectors: score the rows of a line, one contract (base.py). Pure apart from onnxruntime."""
