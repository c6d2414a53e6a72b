"""The LLM explainer on the device: a causal LM in ONNX, run by onnxruntime with a KV cache.

No torch, no transformers: the tokenizer is the `tokenizers` package reading `tokenizer.json`,
and the decode loop is ours. An exported model directory (`lineside-export llm`) holds:

    model.onnx       inputs  input_ids, attention_mask, position_ids (int64, batch x seq)
                             past_key_values.<i>.key / .value  (batch, kv_heads, past, head_dim)
                     outputs logits (batch, seq, vocab), present.<i>.key / .value
    tokenizer.json   the model's tokenizer
    llm.json         layers, kv_heads, head_dim, bos/eos ids, quantisation, parity figures

Decoding is greedy, under a token budget and a wall-clock budget; the first step feeds the
whole prompt with an empty cache, every later step one token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from agent.errors import ExplainerModelError
from agent.explain.facts import Facts
from agent.explain.template import build_prompt

META_NAME = "llm.json"
MODEL_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"


@dataclass(frozen=True)
class Generation:
    """What one greedy decode produced and what it cost."""

    tokens: list[int]
    stopped: str  # "eos", "tokens" (budget) or "time" (wall-clock budget)
    first_token_s: float
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second over the whole decode."""
        return len(self.tokens) / self.seconds if self.seconds > 0 else 0.0


def read_meta(model_dir: Path) -> dict[str, Any]:
    """The llm.json of an exported model directory, checked for the fields the loop needs."""
    path = model_dir / META_NAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExplainerModelError(
            f"{path}: cannot read ({exc}); export the model with lineside-export llm"
        ) from exc
    for key in ("layers", "kv_heads", "head_dim", "eos_token_id"):
        if key not in meta:
            raise ExplainerModelError(f"{path}: missing {key!r}")
    return dict(meta)


class OnnxCausalLM:
    """A causal LM exported with its KV cache, decoded greedily by onnxruntime."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        self.meta = read_meta(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(model_dir / MODEL_NAME), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_NAME))
        except Exception as exc:  # onnxruntime and tokenizers raise their own types
            raise ExplainerModelError(
                f"{model_dir}: cannot load the model or tokenizer: {exc}"
            ) from exc
        layers = int(self.meta["layers"])
        self.past_names = [
            f"past_key_values.{i}.{k}" for i in range(layers) for k in ("key", "value")
        ]
        self.kv_shape = (1, int(self.meta["kv_heads"]), 0, int(self.meta["head_dim"]))
        self.eos = int(self.meta["eos_token_id"])
        bos = self.meta.get("bos_token_id")
        self.bos = int(bos) if bos is not None and self.meta.get("add_bos", True) else None

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with the BOS token when the model expects one."""
        ids = list(self.tokenizer.encode(text, add_special_tokens=False).ids)
        return ([self.bos] if self.bos is not None else []) + ids

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, without special tokens."""
        return str(self.tokenizer.decode([i for i in ids if i != self.eos]))

    def generate(
        self, ids: list[int], max_new_tokens: int, max_seconds: float | None = None
    ) -> Generation:
        """Greedy decoding with the KV cache; stops at EOS, the token or the time budget."""
        started = time.perf_counter()
        past = {n: np.zeros(self.kv_shape, dtype=np.float32) for n in self.past_names}
        step_ids = np.array([ids], dtype=np.int64)
        total = len(ids)
        positions = np.arange(total, dtype=np.int64)[None, :]
        tokens: list[int] = []
        first = 0.0
        stopped = "tokens"
        for step in range(max_new_tokens):
            feed = {
                "input_ids": step_ids,
                "attention_mask": np.ones((1, total), dtype=np.int64),
                "position_ids": positions,
                **past,
            }
            logits, *presents = self.session.run(None, feed)
            token = int(np.argmax(logits[0, -1]))
            tokens.append(token)
            if step == 0:
                first = time.perf_counter() - started
            if token == self.eos:
                stopped = "eos"
                break
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                stopped = "time"
                break
            past = dict(zip(self.past_names, presents, strict=True))
            step_ids = np.array([[token]], dtype=np.int64)
            positions = np.array([[total]], dtype=np.int64)
            total += 1
        return Generation(tokens, stopped, first, time.perf_counter() - started)


class LlmExplainer:
    """Facts -> prompt -> greedy decode -> text, within the token and time budgets."""

    def __init__(self, model_dir: Path, max_new_tokens: int, max_seconds: float) -> None:
        self.model = OnnxCausalLM(model_dir)
        self.max_new_tokens = max_new_tokens
        self.max_seconds = max_seconds

    def explain(self, facts: Facts, language: str = "en") -> tuple[str, dict[str, Any]]:
        """The model's explanation of the facts and what it cost (tokens, seconds, stop)."""
        ids = self.model.encode(build_prompt(facts, language))
        out = self.model.generate(ids, self.max_new_tokens, self.max_seconds)
        text = self.model.decode(out.tokens).strip()
        info = {
            "tokens": len(out.tokens),
            "stopped": out.stopped,
            "first_token_s": out.first_token_s,
            "decode_s": out.seconds,
        }
        return text, info
