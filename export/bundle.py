"""Writing a model bundle: the manifest (agent.bundles.manifest.Manifest), file hashes, and an
all-or-nothing publish.

Everything is written into a staging directory beside `--out` (same filesystem, so the final
rename is atomic). Only when every file is written and `load_bundle` accepts the staging
directory is it renamed to `--out`; a failed export removes the staging directory and leaves
`--out` as it was. A non-empty `--out` is refused unless `force` is given, and then the old
bundle is moved aside first and deleted only after the new one is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.bundles.bundle import Bundle, load_bundle, sha256_file
from agent.bundles.manifest import MANIFEST_NAME, Manifest, SpcLimits
from agent.core.spc import ImrLimits
from agent.errors import BundleError
from export.errors import ExportError
from export.parity import Parity

MIN_AGENT_VERSION = "0.1.0"
FP32_NAME = "vae.onnx"
INT8_NAME = "vae.int8.onnx"
PARITY_NAME = "parity.json"
#: The manifest `models`: the ONNX file of each precision.
MODEL_FILES = {"fp32": FP32_NAME, "int8": INT8_NAME}


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an `--out` that is a file, or a non-empty directory without `force`."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: --out exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(
            f"{out}: --out is not empty; choose a new directory or pass --force to replace it"
        )


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A fresh directory beside `out`; removed again if the block raises."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; a bundle is copied to devices
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest `files` entry of one file: its sha256 and size in bytes."""
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def spc_entry(spc: ImrLimits) -> SpcLimits:
    """The manifest's SPC limits of the I-MR limits fitted at export."""
    return SpcLimits(
        center=spc.center.tolist(),
        sigma=spc.sigma.tolist(),
        mr_bar=spc.mr_bar.tolist(),
        nsigmas=float(spc.nsigmas),
        sigma_method=tuple(spc.sigma_method),
    )


def file_entries(
    bundle_dir: Path,
    golden: dict[str, Any] | None = None,
    models: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest `files`: each shipped model, parity.json and the golden file, hashed."""
    shipped = tuple((models or MODEL_FILES).values())
    names = (*shipped, PARITY_NAME) + ((str(golden["file"]),) if golden else ())
    return {name: file_entry(bundle_dir / name) for name in names}


def shipped_models(bundle_dir: Path, int8_ok: bool) -> dict[str, str]:
    """The manifest `models`: both precisions, or fp32 alone (the int8 file removed) when the
    int8 model failed its parity gate; the agent then runs fp32 whatever its precision."""
    if int8_ok:
        return dict(MODEL_FILES)
    (bundle_dir / INT8_NAME).unlink(missing_ok=True)
    return {"fp32": FP32_NAME}


def created_now() -> str:
    """`created_at`: now, UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(bundle_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """Write manifest.json (UTF-8, indented, trailing newline); return the object written."""
    raw = manifest.to_dict()
    text = json.dumps(raw, indent=2) + "\n"
    (bundle_dir / MANIFEST_NAME).write_text(text, encoding="utf-8")
    return raw


def _verify(path: Path) -> Bundle:
    try:
        return load_bundle(path)
    except BundleError as exc:
        raise ExportError(f"the written bundle does not load: {exc}") from exc


def publish(staging: Path, out: Path, force: bool) -> Bundle:
    """Verify the staged bundle, move it to `out` atomically, and verify it again there."""
    _verify(staging)
    check_out_dir(out, force)
    old: Path | None = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
        else:
            out.rmdir()
    try:
        staging.rename(out)
    except OSError as exc:
        if old is not None:
            old.rename(out)
        raise ExportError(f"{out}: cannot move the new bundle into place: {exc}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return _verify(out)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def summary(bundle: Bundle, parity: Parity, rows: dict[str, int]) -> str:
    """A few human lines about a published bundle, for stdout."""
    m = bundle.manifest
    units = [f"{c.name} [{c.unit}]" if c.unit else c.name for c in m.channels]
    sizes = {name: int(entry["size"]) for name, entry in m.files.items()}
    fp32 = sizes[m.models["fp32"]]
    int8 = sizes[m.models["int8"]] if "int8" in m.models else 0
    if parity.passed:
        verdict = "ok"
    elif int8:
        verdict = "FAILED (int8 shipped anyway: --allow-parity-loss)"
    else:
        verdict = "FAILED (int8 refused: fp32 shipped alone)"
    left_out = ", ".join(
        f"{column} ({entry['kind']})"
        for column, entry in (m.training.get("columns_left_out") or {}).items()
    )
    return "\n".join(
        [
            f"bundle    {bundle.path}  (model_version {m.model_version}, {m.label!r})",
            f"channels  {len(m.channels)}: {', '.join(units)}",
            *([f"left out  {left_out}"] if left_out else []),
            f"window    {m.window} samples, hop {m.hop}",
            f"rows      train {rows['train']}, val {rows['val']}, cal {rows['cal']}, "
            f"dropped {rows['dropped']}",
            f"threshold {m.threshold:.6g}  ({m.threshold_method})",
            f"parity    {verdict}: pearson {parity.pearson:.5f}, max abs diff "
            f"{parity.max_abs_diff:.3g}, max rel diff {parity.max_rel_diff:.3g}, "
            f"{parity.decision_flips}/{parity.windows} decisions flipped",
            f"files     {m.models['fp32']} {_size(fp32)}, "
            + (f"{m.models['int8']} {_size(int8)} ({int8 / fp32:.0%} of fp32)" if int8 else "")
            + ("" if int8 else "no int8 model"),
        ]
    )
