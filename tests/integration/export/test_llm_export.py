"""The LLM path for real: a tiny Llama built from a config with a locally trained tokenizer,
exported by `lineside-export llm` (optimum's exporter), decoded by our onnxruntime loop, token
for token equal to optimum's own `ORTModelForCausalLM.generate` on the same export and to
transformers' greedy `generate` on the source. Nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from agent.explain.llm import OnnxCausalLM
from export.distil import model_from_config
from export.llm import export_llm
from tests.tiny_llm import CORPUS, TINY

PROMPTS = ["melt_pressure is 204.1 bar", "Likely cause:", "可能原因：过滤网"]
MORE_PROMPTS = [
    "Anomaly on line extruder-1 since",
    "check the differential pressure",
    "score 12.0 against threshold 8.0. melt_pressure",
]


def export_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_from_config(dict(TINY), CORPUS, tmp_path_factory.mktemp("tiny") / "hf", seed=3)


@pytest.fixture(scope="module")
def exported(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("onnx")
    out = {q: base / q for q in ("none", "int8", "int4")}
    done = export_cli("llm", "--model", str(tiny), "--out", str(out["none"]))  # the fp32 one
    assert done.returncode == 0, done.stderr[-2000:]
    for q in ("int8", "int4"):
        export_llm(tiny, out[q], q)
    return out


@pytest.mark.timeout(300)
def test_onnx_decode_loop_matches_transformers_generate(tiny: Path, exported) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    model.train(False)
    lm = OnnxCausalLM(exported["none"])
    for prompt in PROMPTS:
        ids = lm.encode(prompt)
        with torch.no_grad():
            ref = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=40, do_sample=False, eos_token_id=model.config.eos_token_id,
                pad_token_id=model.config.pad_token_id,
            )[0, len(ids) :].tolist()  # fmt: skip
        got = lm.generate(ids, 40)
        assert got.tokens == ref, prompt
        assert len(got.tokens) >= 2 and got.first_token_s > 0
    meta = json.loads((exported["none"] / "llm.json").read_text())
    assert meta["parity_fp32"]["max_abs_diff"] < 1e-4
    assert meta["layers"] == 2 and meta["kv_heads"] == 2 and meta["head_dim"] == 16


@pytest.mark.timeout(300)
def test_onnx_decode_loop_matches_optimums_generate(exported) -> None:
    """Our loop (onnxruntime + tokenizers) and optimum's ORTModelForCausalLM, same export dir."""
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    ort_model = ORTModelForCausalLM.from_pretrained(exported["none"], local_files_only=True)
    assert ort_model.can_use_cache
    lm = OnnxCausalLM(exported["none"])
    lengths = set()
    for prompt in PROMPTS + MORE_PROMPTS:
        ids = lm.encode(prompt)
        ref = ort_model.generate(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=32, do_sample=False, eos_token_id=lm.eos, pad_token_id=0,
        )[0, len(ids) :].tolist()  # fmt: skip
        got = lm.generate(ids, 32)
        assert got.tokens == ref, prompt
        lengths.add(len(got.tokens))
    # Random weights rarely hit EOS early: the comparison ran over many cached steps.
    assert max(lengths) >= 16


@pytest.mark.timeout(300)
def test_budgets_stop_the_decode(exported) -> None:
    lm = OnnxCausalLM(exported["none"])
    ids = lm.encode(PROMPTS[0])
    assert len(lm.generate(ids, 3).tokens) <= 3
    timed = lm.generate(ids, 10_000, max_seconds=0.05)
    assert timed.stopped in ("time", "eos") and timed.seconds < 2.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("kind", "op"), [("int8", "MatMulInteger"), ("int4", "MatMulNBits")])
def test_quantised_models_carry_quantised_ops_and_run(exported, kind, op) -> None:
    ops = Counter(n.op_type for n in onnx.load(str(exported[kind] / "model.onnx")).graph.node)
    assert ops[op] >= 2 * 7  # q, k, v, o, gate, up, down in each of the 2 layers
    assert (
        ops["MatMul"] <= 2 * 2 + 1
    )  # what is left: attention's two activations MatMuls, lm_head at most
    meta = json.loads((exported[kind] / "llm.json").read_text())
    assert meta["quantization"] == kind and 0.0 <= meta["parity"]["top1_agreement"] <= 1.0
    fp32 = (exported["none"] / "model.onnx").stat().st_size
    assert (exported[kind] / "model.onnx").stat().st_size < fp32
    lm = OnnxCausalLM(exported[kind])
    out = lm.generate(lm.encode(PROMPTS[0]), 8)
    assert out.tokens and all(0 <= t < lm.meta["vocab_size"] for t in out.tokens)
    assert np.isfinite(out.seconds)


@pytest.mark.timeout(300)
def test_cli_export_and_its_errors(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "llm"
    ok = export_cli("llm", "--model", str(tiny), "--out", str(out), "--quantize", "int8")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "parity    fp32 max abs logit diff" in ok.stdout and "int8" in ok.stdout
    again = export_cli("llm", "--model", str(tiny), "--out", str(out))
    assert again.returncode == 2 and "--out is not empty" in again.stderr
    missing = export_cli("llm", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no config.json" in missing.stderr
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    (no_tok / "config.json").write_text((tiny / "config.json").read_text())
    bad = export_cli("llm", "--model", str(no_tok), "--out", str(tmp_path / "y"))
    assert bad.returncode == 2 and "no tokenizer.json" in bad.stderr
    assert "Traceback" not in bad.stderr + missing.stderr + again.stderr


@pytest.mark.timeout(300)
def test_cli_refuses_a_model_optimum_cannot_export_as_a_causal_lm(tiny: Path, tmp_path) -> None:
    from transformers import BertConfig, BertLMHeadModel

    bert = tmp_path / "bert"
    config = BertConfig(
        vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, is_decoder=True, eos_token_id=2,
    )  # fmt: skip
    BertLMHeadModel(config).save_pretrained(bert)
    (bert / "tokenizer.json").write_bytes((tiny / "tokenizer.json").read_bytes())
    out = tmp_path / "out"
    bad = export_cli("llm", "--model", str(bert), "--out", str(out))
    assert bad.returncode == 2 and "optimum cannot export it" in bad.stderr
    assert "text-generation-with-past" in bad.stderr and "Traceback" not in bad.stderr
    assert not out.exists()


@pytest.mark.timeout(300)
def test_graph_has_the_interface_the_device_loop_feeds(exported) -> None:
    """optimum's text-generation-with-past names, types and cache layout, which our loop feeds."""
    graph = onnx.load(str(exported["none"] / "model.onnx")).graph
    cache = [f"past_key_values.{i}.{k}" for i in range(2) for k in ("key", "value")]
    inputs = {v.name: v.type.tensor_type for v in graph.input}
    outputs = {v.name: v.type.tensor_type for v in graph.output}
    assert list(inputs) == ["input_ids", "attention_mask", "position_ids", *cache]
    assert list(outputs) == ["logits", *(n.replace("past_key_values", "present") for n in cache)]
    ids = ("input_ids", "attention_mask", "position_ids")
    assert {inputs[n].elem_type for n in ids} == {onnx.TensorProto.INT64}
    fp32 = onnx.TensorProto.FLOAT
    for name, t in [*((n, inputs[n]) for n in cache), *outputs.items()]:
        assert t.elem_type == fp32, name
    for t in [*(inputs[n] for n in cache), *(outputs[n] for n in list(outputs)[1:])]:
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        assert dims[1] == 2 and dims[3] == 16 and isinstance(dims[2], str)  # heads, len, dim
    assert [d.dim_value for d in outputs["logits"].shape.dim][2] == 400
