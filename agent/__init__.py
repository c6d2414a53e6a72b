"""Lineside: an edge inference agent for line-side hardware."""

__version__ = "0.1.0"
