"""Anomaly explanations: facts first (pure), a template or a small LLM to phrase them, a guard.

Modules: `facts` (what happened, as data), `template` (the deterministic default), `llm`
(onnxruntime decode), `worker` (the explainer process), `guard` (refuses any LLM text the facts
do not support) with `tokens` (normalisation, numbers in every form), `binding` (numbers,
times and causes bound to their fact) and `lexicon` (language, vocabulary).
"""
