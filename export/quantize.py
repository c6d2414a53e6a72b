"""Dynamic int8 quantisation of the fp32 scoring model with onnxruntime.

`quantize_dynamic` stores the weights as int8 and quantises activations on the fly, so no
calibration data is needed. Its integer-op registry covers MatMul (as MatMulInteger) but not
Gemm, and the dynamo exporter writes every nn.Linear as a Gemm. Left alone, the "int8" model
would be the fp32 model again; so each plain Gemm (alpha = beta = 1, no transA, constant B) is
first rewritten as MatMul + Add with B transposed in place, which is exactly equivalent. The
model then goes through `quant_pre_process` (shape inference) with the onnxruntime graph
optimisation skipped, because that optimisation fuses MatMul + Add back into Gemm.

Small MatMuls (fewer than `SMALL_WEIGHTS` weights: the VAE's latent bottleneck) stay fp32.
Dynamic quantisation rounds their activations to 8 bits too, and an error in the 8 latent
numbers moves the whole reconstruction: with them in int8, score correlation with fp32 fell to
0.987 on the demo line; with them in fp32 it is 0.9987, for about 2 KB more model.

Weights are quantised to 7 bits (`reduce_range`), so the int8 model gives the same answers on
every CPU. Dynamic quantisation feeds MatMulInteger uint8 activations and int8 weights. On x86
without VNNI (AVX2-only, or AVX-512 without VNNI) onnxruntime's u8s8 kernel multiplies them with
`vpmaddubsw`, which adds each pair of u8 x s8 products into a saturating int16: 2 x 255 x 127 =
64,770 does not fit, so large activations are clipped there and nowhere else (VNNI and aarch64
accumulate in int32). With weights in [-64, 63] a pair is at most 2 x 255 x 64 = 32,640, which
fits, so every kernel computes the same exact integer sums. onnxruntime's quantisation docs give
this remedy for that accuracy drop. Under `qemu-x86_64 -cpu Haswell` (AVX2, no VNNI) the test
bundle of tests/integration/export/test_export.py scored at a correlation of 0.920 with fp32
with 8-bit weights (0.9999 on an AVX-512 VNNI CPU); with 7 bits the int8 scores are
bit-identical on both CPUs (benchmarks/int8_cpus.py; docs/skab.md, "int8 on every CPU").
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from export.errors import ExportError

_QUANTIZED_OPS = frozenset({"MatMulInteger", "DynamicQuantizeMatMul"})
SMALL_WEIGHTS = 4096
#: 7-bit weights: no int16 saturation in onnxruntime's non-VNNI x86 kernels (see above).
REDUCE_RANGE = True
#: The largest |weight| a 7-bit signed quantised weight takes (onnxruntime: [-64, 63]).
REDUCED_WEIGHT_MAX = 64


def small_matmuls(model: onnx.ModelProto, limit: int = SMALL_WEIGHTS) -> list[str]:
    """Names of MatMul nodes whose constant weight has fewer than `limit` elements."""
    sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and len(n.input) > 1 and sizes.get(n.input[1], limit) < limit
    ]


def _attr(node: onnx.NodeProto, name: str, default: float | int) -> float | int:
    for a in node.attribute:
        if a.name == name:
            value: float | int = helper.get_attribute_value(a)
            return value
    return default


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite plain Gemm nodes with a constant B as MatMul + Add, in place; return the count."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    rewritten = 0
    for node in graph.node:
        b_name = node.input[1] if node.op_type == "Gemm" and len(node.input) >= 2 else ""
        plain = (
            node.op_type == "Gemm"
            and b_name in inits
            and _attr(node, "alpha", 1.0) == 1.0
            and _attr(node, "beta", 1.0) == 1.0
            and _attr(node, "transA", 0) == 0
        )
        if not plain:
            new_nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[b_name])
        if _attr(node, "transB", 0):
            weight = weight.T.copy()
        w_name = f"{b_name}_matmul_T"
        graph.initializer.append(numpy_helper.from_array(weight, w_name))
        base = node.name or f"gemm_{rewritten}"
        has_bias = len(node.input) >= 3 and node.input[2] != ""
        mm_out = f"{base}_matmul_out" if has_bias else node.output[0]
        new_nodes.append(
            helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{base}_matmul")
        )
        if has_bias:
            new_nodes.append(
                helper.make_node(
                    "Add", [mm_out, node.input[2]], [node.output[0]], name=f"{base}_bias"
                )
            )
        rewritten += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return rewritten


class _Windows(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration windows to the static quantiser in batches."""

    def __init__(self, windows: npt.NDArray[np.float32], batch: int = 256) -> None:
        self._batches = iter(
            [
                {"x": np.ascontiguousarray(windows[i : i + batch], dtype=np.float32)}
                for i in range(0, windows.shape[0], batch)
            ]
        )

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        """The next batch, or None when they are used up."""
        return next(self._batches, None)


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    per_channel: bool = True,
    method: str = "dynamic",
    calibration: npt.NDArray[np.float32] | None = None,
    reduce_range: bool = REDUCE_RANGE,
) -> dict[str, object]:
    """Write an int8-quantised copy of `fp32_path`; return what was done.

    `method` "dynamic" quantises activations on the fly; "static" fixes their ranges from
    `calibration` windows (QDQ format, MinMax), which needs those scaled windows.
    """
    if method not in ("dynamic", "static"):
        raise ExportError(f"unknown quantisation method {method!r} (dynamic or static)")
    if method == "static" and (calibration is None or calibration.shape[0] == 0):
        raise ExportError("static quantisation needs calibration windows")
    model = onnx.load(str(fp32_path))
    rewritten = gemm_to_matmul(model)
    onnx.checker.check_model(model)
    kept_fp32 = small_matmuls(model)
    ort_logger = logging.getLogger("onnxruntime")
    previous = ort_logger.level
    ort_logger.setLevel(logging.ERROR)  # "please run pre-processing" notes, already done
    try:
        with tempfile.TemporaryDirectory(prefix="lineside-quant-") as scratch:
            matmul_path = Path(scratch) / "matmul.onnx"
            pre_path = Path(scratch) / "pre.onnx"
            onnx.save_model(model, str(matmul_path))
            try:
                quant_pre_process(str(matmul_path), str(pre_path), skip_optimization=True)
            except Exception:
                # its symbolic shape inference fails on some graphs (the max+latent score's):
                # onnx's own inference is enough to quantise MatMuls by their weights
                onnx.save_model(onnx.shape_inference.infer_shapes(model), str(pre_path))
            if method == "dynamic":
                quantize_dynamic(
                    pre_path,
                    int8_path,
                    weight_type=QuantType.QInt8,
                    per_channel=per_channel,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=kept_fp32,
                    reduce_range=reduce_range,
                )
            else:
                assert calibration is not None
                quantize_static(
                    pre_path,
                    int8_path,
                    _Windows(calibration),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=per_channel,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=kept_fp32,
                    calibrate_method=CalibrationMethod.MinMax,
                    reduce_range=reduce_range,
                )
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises plain Exceptions
        raise ExportError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
    finally:
        ort_logger.setLevel(previous)
    quantized = onnx.load(str(int8_path))
    ops = sorted({n.op_type for n in quantized.graph.node})
    n_quantized = sum(n.op_type in _QUANTIZED_OPS for n in quantized.graph.node)
    if method == "static":
        n_quantized = sum(
            n.op_type == "MatMul" and any(i.endswith("_DequantizeLinear_Output") for i in n.input)
            for n in quantized.graph.node
        )
    if n_quantized == 0:
        raise ExportError(
            f"int8 quantisation left no integer MatMul in {int8_path.name} (ops: {ops})"
        )
    onnx.checker.check_model(str(int8_path), full_check=True)
    return {
        "method": f"onnxruntime quantize_{method}",
        "weight_type": "QInt8",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "gemm_rewritten": rewritten,
        "quantized_matmuls": n_quantized,
        "kept_fp32": kept_fp32,
    }
