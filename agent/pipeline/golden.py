"""The bundle's golden windows, run again on this CPU: which precision the device may run.

The export writes `golden.npz` (a few held-out windows and what each model answered on the
workstation). Integer kernels differ between CPUs (x86 with or without VNNI, aarch64), so an
int8 model that matched fp32 on the workstation may not match here. `bundle install` and every
load of the VAE run the golden windows through the models again: fp32 must still match, or the
bundle is refused; an int8 model that does not match, or a bundle that ships none (its int8 was
refused by the export's parity gate), makes the device run fp32, with a warning that says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from agent.bundles.bundle import Bundle
from agent.bundles.manifest import Manifest

log = logging.getLogger(__name__)
FLOAT_PRECISION = "fp32"
DEFAULT_RTOL = 1e-2
DEFAULT_ATOL = 1e-3


class GoldenUnreadable(ValueError):
    """The golden file cannot be read or lacks the inputs."""


@dataclass(frozen=True)
class GoldenResult:
    """One model on the golden windows: "" when it matches, else what differs."""

    precision: str
    model: str
    problem: str
    finite: bool = True


def golden_arrays(bundle_dir: Path, manifest: Manifest) -> dict[str, np.ndarray[Any, Any]] | None:
    """The golden file's arrays (None when the manifest names none); GoldenUnreadable if bad."""
    golden = manifest.golden
    if golden is None or golden.get("file") not in manifest.files:
        return None
    try:
        with np.load(bundle_dir / str(golden["file"]), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays["x"] = arrays["x"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise GoldenUnreadable(f"golden file cannot be read: {exc}") from None
    return arrays


def run_golden(
    session: ort.InferenceSession,
    arrays: dict[str, np.ndarray[Any, Any]],
    precision: str,
    model: str,
    manifest: Manifest,
) -> GoldenResult:
    """Run one model's session on the golden inputs and compare with its expected outputs."""
    golden = manifest.golden or {}
    rtol = float(golden.get("rtol", DEFAULT_RTOL))
    atol = float(golden.get("atol", DEFAULT_ATOL))
    score, contrib = session.run(["score", "contrib"], {"x": arrays["x"]})
    if not (np.isfinite(score).all() and np.isfinite(contrib).all()):
        return GoldenResult(precision, model, "NaN or infinity on the golden inputs", False)
    for out, got in (("score", score), ("contrib", contrib)):
        want = arrays.get(f"{out}_{precision}")
        if want is None or want.shape != got.shape:
            return GoldenResult(precision, model, f"{out} has no golden output of its shape")
        if not np.allclose(got, want, rtol, atol):
            diff = float(np.max(np.abs(got - want)))
            return GoldenResult(
                precision,
                model,
                f"{out} differs from the golden outputs on this CPU (max abs diff {diff:.3g}; "
                f"rtol {rtol}, atol {atol})",
            )
    return GoldenResult(precision, model, "")


def fallback_reason(bundle: Bundle, wanted: str, session: ort.InferenceSession | None) -> str:
    """Why the device must run fp32 instead of `wanted` ("" when `wanted` may run): the
    bundle ships no such model, or its session does not reproduce the golden outputs here."""
    manifest = bundle.manifest
    if wanted == FLOAT_PRECISION:
        return ""
    if wanted not in manifest.models:
        return (
            f"the bundle ships no {wanted} model (the export refused it: see parity.json); "
            "running fp32"
        )
    if session is None:
        return ""
    try:
        arrays = golden_arrays(bundle.path, manifest)
    except GoldenUnreadable as exc:
        return f"{exc}; running fp32"
    if arrays is None:
        return ""  # an older bundle without golden windows: nothing to re-check
    result = run_golden(session, arrays, wanted, manifest.models[wanted], manifest)
    if not result.problem:
        return ""
    return f"{result.model} {result.problem}; running fp32"
