"""Lineside workstation export: train a detector on historian CSVs and write a model bundle.

Only this package imports torch; the agent that runs on the device never does.
"""

from __future__ import annotations

from export.errors import ExportError

__all__ = ["ExportError"]
