"""Anomaly explanations: facts first (pure), a template or a small LLM to phrase them, a guard.

Modules: `facts` (what happened, as data), `catalogue` (the site's failure modes), `template`
(the deterministic default), `guard` (refuses unsupported LLM text), `llm` (onnxruntime decode).
"""
