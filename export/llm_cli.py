"""The `llm` and `distil` subcommands of `lineside-export` (torch is imported only when run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

QUANTIZE = ("none", "int8", "int4")
DEFAULT_STUDENT: dict[str, Any] = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
    "tokenizer_vocab": 1024,
}  # fmt: skip


def add_llm_parsers(sub: Any) -> None:
    """Add `llm` and `distil` to the subcommand parsers."""
    llm = sub.add_parser(
        "llm",
        help="export a Hugging Face causal LM dir to ONNX with its KV cache",
        description=(
            "Export a local Hugging Face causal LM directory (config.json, weights, "
            "tokenizer.json) to DIR/model.onnx with past key values, for the device's "
            "explainer; check fp32 logit parity; optionally quantise. Nothing is downloaded."
        ),
    )
    llm.add_argument("--model", required=True, type=Path, metavar="HF_DIR")
    llm.add_argument("--out", required=True, type=Path, metavar="DIR")
    llm.add_argument("--quantize", choices=QUANTIZE, default="none", help="weights (none)")
    llm.add_argument("--force", action="store_true", help="replace a non-empty --out")
    llm.set_defaults(handler=_cmd_llm)

    distil = sub.add_parser(
        "distil",
        help="distil a small explainer LM from a teacher on simulated (and SKAB) anomalies",
        description=(
            "Sequence-level distillation: build the facts of simulated fault windows (and SKAB "
            "anomalies with --skab), let the teacher (`template` or an HF dir) explain them, "
            "fine-tune the student (an HF dir, or a JSON LlamaConfig, or `tiny` for a built-in "
            "small config) on the pairs, export it to ONNX and score it on held-out facts."
        ),
    )
    distil.add_argument("--teacher", default="template", metavar="HF_DIR|template")
    distil.add_argument("--student", required=True, metavar="HF_DIR|CONFIG.json|tiny")
    distil.add_argument("--out", required=True, type=Path, metavar="DIR")
    distil.add_argument("--examples", type=int, default=1600, help="simulated fault windows")
    distil.add_argument("--steps", type=int, default=3000, help="fine-tuning steps (3000)")
    distil.add_argument("--batch", type=int, default=8, help="batch size (8)")
    distil.add_argument("--lr", type=float, default=3e-3, help="learning rate (3e-3)")
    distil.add_argument("--languages", default="en,zh", help="comma-separated (en,zh)")
    distil.add_argument("--quantize", choices=QUANTIZE, default="int8", help="weights (int8)")
    distil.add_argument("--skab", type=Path, metavar="DIR", help="SKAB's CSV folder, if local")
    distil.add_argument("--seed", type=int, default=0)
    distil.add_argument("--force", action="store_true", help="replace a non-empty --out")
    distil.set_defaults(handler=_cmd_distil)


def _cmd_llm(args: argparse.Namespace) -> int:
    from export.llm import export_llm, summary

    meta = export_llm(args.model, args.out, args.quantize, force=args.force)
    print(summary(args.out, meta))
    return 0


def _cmd_distil(args: argparse.Namespace) -> int:
    import sys
    import tempfile

    from export.distil import DistilOptions, run_distil
    from export.errors import ExportError
    from export.llm import summary

    languages = tuple(x.strip() for x in args.languages.split(",") if x.strip())
    if not languages or any(x not in ("en", "zh") for x in languages):
        raise ExportError(f"--languages {args.languages!r}: use en, zh or en,zh")
    with tempfile.TemporaryDirectory() as tmp:
        student = Path(args.student)
        if args.student == "tiny":
            student = Path(tmp) / "tiny.json"
            student.write_text(json.dumps(DEFAULT_STUDENT))
        options = DistilOptions(
            teacher=args.teacher, student=student, out=args.out, examples=args.examples,
            steps=args.steps, batch=args.batch, lr=args.lr, languages=languages,
            quantization=args.quantize, skab=args.skab, seed=args.seed, force=args.force,
        )  # fmt: skip
        meta = run_distil(options, say=lambda line: print(line, file=sys.stderr, flush=True))
    d = meta["distillation"]
    print(summary(args.out, meta))
    print(
        f"distilled {d['pairs']} pairs; held-out answers {d['answers']}: grounded "
        f"{d['grounded']:.0%}, identical to the teacher {d['exact']:.0%}"
    )
    return 0
