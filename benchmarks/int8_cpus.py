"""int8 against fp32 on the CPUs a bundle meets: this one, and x86 without VNNI (emulated).

    python benchmarks/int8_cpus.py

Trains one VAE on the demo line's normal historian (export defaults, few epochs), exports it,
and quantises it twice: 8-bit weights (onnxruntime's default) and 7-bit weights (`reduce_range`,
the export's choice, export/quantize.py). Each int8 model then scores the same held-out
windows and their probes (export/parity.py) on this CPU and, when `qemu-x86_64-static` is
installed, under `qemu-x86_64 -cpu Haswell` (AVX2, no AVX-512, no VNNI: onnxruntime takes its
u8s8 `vpmaddubsw` path there, whose int16 pair sums saturate). The table gives, per model and
CPU, the score correlation with fp32, the largest score difference as a share of the threshold,
and the decisions flipped; then whether the 7-bit model's scores are bit-identical across CPUs.
aarch64 is not measured here (its int8 kernels accumulate u8 x s8 in int32, as VNNI does).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
SCORER = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], s.run(["score"], {"x": x})[0])
"""


def cpu_flags() -> str:
    """The SIMD features of this CPU that decide onnxruntime's int8 kernel."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = set(next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512/vnni"


def score_with(model: Path, windows: Path, out: Path, emulate: bool) -> np.ndarray:
    """Scores of `model` on the saved windows, natively or under qemu's Haswell CPU."""
    command = [sys.executable, "-c", SCORER, str(model), str(windows), str(out)]
    if emulate:
        assert QEMU is not None
        command = [QEMU, "-cpu", "Haswell", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return np.asarray(np.load(out), dtype=np.float64)


def main() -> int:
    """Train, quantise both ways, score on each CPU, print the table."""
    from agent.demo.run import write_historian
    from export.budget import budget_threshold
    from export.data import make_windows, read_tables, split_tables
    from export.defaults import DEFAULT_WINDOW
    from export.onnx_export import channel_baseline, export_onnx, prepare
    from export.parity import probe_windows, score_onnx
    from export.pipeline import floored_scaler
    from export.quantize import quantize_int8
    from export.train import TrainConfig, train_vae

    with tempfile.TemporaryDirectory(prefix="lineside-int8-") as tmp:
        work = Path(tmp)
        csv = work / "historian.csv"
        write_historian(csv, rows=3000, seed=11)
        split = split_tables(read_tables([csv]))
        train_rows = split.stacked("train")
        scaler = floored_scaler(train_rows, train_rows)
        w = {
            part: make_windows(getattr(split, part), scaler, DEFAULT_WINDOW, 1)
            for part in ("train", "val", "cal")
        }
        model = train_vae(prepare(w["train"]), prepare(w["val"]), TrainConfig(epochs=15)).model
        fp32 = work / "vae.onnx"
        export_onnx(model, fp32, channel_baseline(model, w["val"]))
        held = np.concatenate([w["val"], w["cal"]])
        checked = np.concatenate([held, probe_windows(held)]).astype(np.float32)
        np.save(work / "x.npy", checked)
        reference = score_onnx(fp32, checked)[0].astype(np.float64)
        threshold = budget_threshold(score_onnx(fp32, held)[0], 1 / 8, 1.0).threshold
        print(f"this CPU: {cpu_flags()}; emulated: {'Haswell (AVX2, no VNNI)' if QEMU else '-'}")
        print(
            f"{len(checked)} windows ({len(held)} held-out normal + probes), "
            f"threshold {threshold:.3g}\n"
        )
        print("| int8 weights | CPU | pearson vs fp32 | max abs diff / threshold | flips |")
        print("|---|---|---|---|---|")
        seven: dict[str, np.ndarray] = {}
        for bits, reduce in (("8-bit", False), ("7-bit (reduce_range)", True)):
            int8 = work / f"vae.{reduce}.int8.onnx"
            quantize_int8(fp32, int8, reduce_range=reduce)
            for cpu, emulate in (("this CPU", False), ("Haswell (qemu)", True)):
                if emulate and QEMU is None:
                    continue
                got = score_with(int8, work / "x.npy", work / "s.npy", emulate)
                if reduce:
                    seven[cpu] = got
                pearson = float(np.corrcoef(reference, got)[0, 1])
                worst = float(np.max(np.abs(got - reference))) / threshold
                flips = int(np.count_nonzero((got > threshold) != (reference > threshold)))
                print(f"| {bits} | {cpu} | {pearson:.5f} | {worst:.4f} | {flips} |")
        if len(seven) == 2:
            same = np.array_equal(seven["this CPU"], seven["Haswell (qemu)"])
            diff = float(np.max(np.abs(seven["this CPU"] - seven["Haswell (qemu)"])))
            print(f"\n7-bit scores identical on both CPUs: {same} (max abs diff {diff:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
