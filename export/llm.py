"""`lineside-export llm`: a Hugging Face causal LM directory -> ONNX with its KV cache.

The graph is optimum's: `optimum.exporters.onnx.main_export` with the task
`text-generation-with-past`, local files only. Its interface is what the device's decode loop
(`agent/explain/llm.py`) feeds: input_ids, attention_mask, position_ids,
past_key_values.<i>.key/value -> logits, present.<i>.key/value, the cache laid out batch,
kv_heads, length, head_dim. optimum's own files (config.json, generation_config.json, tokenizer
config) stay beside model.onnx, so `optimum.onnxruntime.ORTModelForCausalLM` loads the export
directory as it is; the device reads only model.onnx, tokenizer.json and our llm.json.

Versions (the `export` extra of pyproject.toml): optimum-onnx 0.1.0, the newest, requires
`optimum~=2.1.0` and `transformers>=4.36,<4.58`, so the workstation pins transformers 4.57.
Under transformers 5 it does not import (`modeling_utils.get_parameter_dtype` is gone). The
device needs neither: onnxruntime and the `tokenizers` package read what this module writes.

Quantisation is ours, on optimum's fp32 graph: `int8` is onnxruntime's dynamic quantisation of
every weight MatMul (per-channel int8 weights, activations quantised on the fly); `int4` is
MatMulNBits (4-bit blockwise weights, block 32, symmetric, int8 compute), which onnxruntime's
CPU provider runs.

Parity is ours too: the fp32 ONNX logits, decoded by our loop's session (prefill with an empty
cache, then one cached step), must match the source model's on a few prompts within
`FP32_TOLERANCE`, or the export fails. A quantised model's figures (max logit difference, top-1
agreement) are recorded in llm.json for the operator to judge.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.bundles.bundle import sha256_file
from agent.explain.llm import META_NAME, MODEL_NAME, TOKENIZER_NAME, OnnxCausalLM
from export.bundle import check_out_dir, staging_dir
from export.errors import ExportError

QUANTIZATIONS = ("none", "int8", "int4")
FP32_TOLERANCE = 1e-3  # max abs logit difference, relative to max(1, largest |logit|)
PARITY_PROMPTS = (
    "line extruder-1; anomaly since 10:00:00 (12.0 s)",
    "tag melt_pressure = 204.1 bar; normal 181.0-199.0 bar; above; step-up",
    "cause clogged screen pack; check the differential pressure across F-101",
)


def load_source(model_dir: Path) -> Any:
    """The Hugging Face model of `model_dir` in fp32 with eager attention (parity, training)."""
    from transformers import AutoModelForCausalLM

    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir}: no config.json; --model must be a Hugging Face model dir")
    if not (model_dir / TOKENIZER_NAME).is_file():
        raise ExportError(
            f"{model_dir}: no {TOKENIZER_NAME}; the device reads fast (Rust) tokenizers only: "
            "save the tokenizer with a fast tokenizer class"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, attn_implementation="eager", dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise ExportError(f"{model_dir}: cannot load the model: {exc}") from exc
    model.train(False)
    return model


def shape_of(model: Any) -> dict[str, int]:
    """Layers, KV heads and head size of a Llama-style config."""
    c = model.config
    heads = int(c.num_attention_heads)
    return {
        "layers": int(c.num_hidden_layers),
        "kv_heads": int(getattr(c, "num_key_value_heads", None) or heads),
        "head_dim": int(getattr(c, "head_dim", None) or c.hidden_size // heads),
        "vocab_size": int(c.vocab_size),
    }


def export_onnx(model_dir: Path, out: Path) -> None:
    """optimum's text-generation-with-past export of `model_dir` into the directory `out`."""
    from optimum.exporters.onnx import main_export

    # The tracer warns about every Python branch on a shape in transformers' code; the branches
    # it bakes in hold for every call the decode loop makes, and the parity check runs both an
    # empty and a filled cache. optimum's own validation is skipped: our parity check is the gate.
    # Their loggers chat about deprecated arguments optimum passes and optional extras.
    loggers = [logging.getLogger(n) for n in ("optimum", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            main_export(
                str(model_dir), output=out, task="text-generation-with-past", device="cpu",
                dtype="fp32", local_files_only=True, do_validation=False,
            )  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            raise ExportError(f"{model_dir}: optimum cannot export it: {exc}") from exc
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
    if not (out / MODEL_NAME).is_file():
        raise ExportError(f"{model_dir}: optimum wrote no {MODEL_NAME} (a decoder-only LM?)")


def _model_files(folder: Path) -> list[str]:
    """model.onnx and, for models over 2 GB, its external data file."""
    return [n for n in (MODEL_NAME, MODEL_NAME + "_data") if (folder / n).is_file()]


def quantize(fp32: Path, out: Path, kind: str) -> None:
    """int8 (dynamic, per-channel MatMul weights) or int4 (MatMulNBits, block 32)."""
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(
            fp32, out, op_types_to_quantize=["MatMul"], per_channel=True,
            weight_type=QuantType.QInt8,
        )  # fmt: skip
    elif kind == "int4":
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        # accuracy_level 4: the CPU kernel computes with int8 activations, which is what
        # makes 4-bit weights faster than int8 ones on CPUs without fast fp16.
        # Importing the quantizer configures the root logger at INFO; it then logs every node.
        logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(fp32)), block_size=32, is_symmetric=True, accuracy_level=4
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
    else:
        raise ExportError(f"--quantize {kind!r} is not one of {', '.join(QUANTIZATIONS)}")


def _source_logits(model: Any, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        logits: np.ndarray = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    return logits


def _onnx_logits(lm: OnnxCausalLM, ids: list[int]) -> np.ndarray:
    """All prefill logits for ids[:-1], then the logits of the last id through the cache."""
    past = {n: np.zeros(lm.kv_shape, dtype=np.float32) for n in lm.past_names}
    head = ids[:-1]
    feed = {
        "input_ids": np.array([head], dtype=np.int64),
        "attention_mask": np.ones((1, len(head)), dtype=np.int64),
        "position_ids": np.arange(len(head), dtype=np.int64)[None, :],
        **past,
    }
    logits, *presents = lm.session.run(None, feed)
    feed = {
        "input_ids": np.array([[ids[-1]]], dtype=np.int64),
        "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
        "position_ids": np.array([[len(ids) - 1]], dtype=np.int64),
        **dict(zip(lm.past_names, presents, strict=True)),
    }
    last = lm.session.run(None, feed)[0]
    return np.concatenate([logits[0], last[0]], axis=0)


def parity(model: Any, lm: OnnxCausalLM, prompts: tuple[str, ...]) -> dict[str, float]:
    """Max logit difference and top-1 agreement of the ONNX model vs the source model."""
    worst, agree, count, scale = 0.0, 0, 0, 1.0
    for text in prompts:
        ids = lm.encode(text)
        if len(ids) < 2:
            continue
        ref, got = _source_logits(model, ids), _onnx_logits(lm, ids)
        worst = max(worst, float(np.max(np.abs(ref - got))))
        scale = max(scale, float(np.max(np.abs(ref))))
        agree += int(np.sum(ref.argmax(-1) == got.argmax(-1)))
        count += ref.shape[0]
    return {"max_abs_diff": worst, "logit_scale": scale, "top1_agreement": agree / max(count, 1)}


def export_llm(
    model_dir: Path, out: Path, quantization: str = "none", force: bool = False,
    prompts: tuple[str, ...] = PARITY_PROMPTS,
) -> dict[str, Any]:  # fmt: skip
    """Export, quantise and parity-check `model_dir` into `out`; return the llm.json written."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"--quantize {quantization!r} is not one of {', '.join(QUANTIZATIONS)}")
    check_out_dir(out, force)
    model = load_source(model_dir)
    config = model.config
    meta: dict[str, Any] = {
        "format": 1,
        "kind": "lineside-llm",
        "architecture": type(model).__name__,
        **shape_of(model),
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "add_bos": config.bos_token_id is not None,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "quantization": quantization,
        "source": model_dir.name,
    }
    if isinstance(meta["eos_token_id"], list):
        meta["eos_token_id"] = meta["eos_token_id"][0]
    if meta["eos_token_id"] is None:
        raise ExportError(f"{model_dir}: config.json has no eos_token_id; the loop needs one")
    with staging_dir(out) as staging:
        export_onnx(model_dir, staging)
        # optimum re-saves the tokenizer through its transformers class; the device gets the
        # source's own file, the one the parity check and the model's training used.
        shutil.copy(model_dir / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        fp32 = staging / MODEL_NAME
        (staging / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        check = parity(model, OnnxCausalLM(staging), prompts)
        meta["parity_fp32"] = check
        if check["max_abs_diff"] > FP32_TOLERANCE * check["logit_scale"]:
            raise ExportError(
                f"fp32 ONNX logits differ from the source model by {check['max_abs_diff']:.3g} "
                f"(allowed {FP32_TOLERANCE:g} x {check['logit_scale']:.3g}): the export is wrong"
            )
        if quantization != "none":
            with tempfile.TemporaryDirectory(dir=staging.parent) as tmp:
                for name in _model_files(staging):  # the data file must stay beside its graph
                    (staging / name).rename(Path(tmp) / name)
                quantize(Path(tmp) / MODEL_NAME, fp32, quantization)
            meta["parity"] = parity(model, OnnxCausalLM(staging), prompts)
        meta["files"] = {
            name: {"sha256": sha256_file(staging / name), "size": (staging / name).stat().st_size}
            for name in [*_model_files(staging), TOKENIZER_NAME]
        }
        (staging / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    return meta


def summary(out: Path, meta: dict[str, Any]) -> str:
    """A few human lines about an exported LLM."""
    size = meta["files"][MODEL_NAME]["size"] / (1 << 20)
    lines = [
        f"llm       {out}  ({meta['architecture']}, {meta['parameters'] / 1e6:.1f} M parameters)",
        f"model     {MODEL_NAME} {size:.2f} MiB, {meta['quantization']}",
        f"parity    fp32 max abs logit diff {meta['parity_fp32']['max_abs_diff']:.3g}",
    ]
    if "parity" in meta:
        p = meta["parity"]
        lines.append(
            f"          {meta['quantization']}: max abs diff {p['max_abs_diff']:.3g}, "
            f"top-1 agreement {p['top1_agreement']:.1%}"
        )
    return "\n".join(lines)
