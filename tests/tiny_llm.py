"""A tiny Llama for the LLM tests: its training corpus and config (built locally, never fetched)."""

from __future__ import annotations

CORPUS = [
    "Anomaly on line extruder-1 since 10:00:00 (12.0 s): score 12.0 against threshold 8.0.",
    "melt_pressure is 204.1 bar, above its normal range 181.0–199.0 bar, after a step up.",
    "Likely cause: clogged screen pack; check the differential pressure across F-101.",
    "可能原因：过滤网堵塞；建议检查换网器 F-101 前后压差。",
] * 10
TINY = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
    "tokenizer_vocab": 400,
}  # fmt: skip
