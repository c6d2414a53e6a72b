"""`lineside-export distil`: sequence-level distillation of a small explainer LM.

1. Facts from anomalies: the simulated extrusion line runs each of its fault kinds on many
   seeds (and, with `--skab DIR`, SKAB's labelled anomalies), and every fault window becomes
   the facts of an event (`agent.explain.facts.build_facts`), exactly as on the device.
2. The teacher writes the explanation of each: `template` (the deterministic explainer, the
   default and the demo's teacher) or a Hugging Face model directory (greedy `generate`).
3. The student (a Hugging Face model dir, or a JSON LlamaConfig to build one from, with a
   byte-level BPE tokenizer trained on the corpus) is fine-tuned on prompt -> explanation,
   with the loss on the explanation tokens only (AdamW, warm-up and cosine decay).
4. The student is exported to ONNX (`export.llm`), quantised if asked, and scored on held-out
   facts: how often its ONNX answer passes the grounding guard, and matches the teacher.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.catalogue import Catalogue, load_catalogue
from agent.demo.simulator.process import SIGNAL_NAMES, SIGNALS, ExtrusionLine, Fault, FaultKind
from agent.explain.facts import Facts, LineContext, Snapshot, build_facts
from agent.explain.guard import check
from agent.explain.llm import TOKENIZER_NAME, OnnxCausalLM
from agent.explain.template import build_prompt, render
from agent.paths import firmware_configs
from agent.types import Event, EventKind, EventState
from export.errors import ExportError

SPECIALS = ["<pad>", "<s>", "</s>"]
PAD, BOS, EOS = 0, 1, 2
FAULTS = (
    (FaultKind.STEP, "melt_pressure", 8.0),
    (FaultKind.STEP, "melt_pressure", -8.0),
    (FaultKind.DRIFT, "barrel_temp", 0.08),
    (FaultKind.DRIFT, "barrel_temp", -0.08),
    (FaultKind.VARIANCE, "vibration_rms", 5.0),
    (FaultKind.STUCK, "throughput", 0.0),
    (FaultKind.DECOUPLE, "motor_current", 1.4),
    (FaultKind.STEP, "throughput", -6.0),
)


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer (any language, no unknown bytes) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def model_from_config(config: dict[str, Any], texts: list[str], out: Path, seed: int = 0) -> Path:
    """A Llama-style model with random weights from `config`, tokenizer trained on `texts`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    # transformers 4.57 (pinned for optimum-onnx) leaves both classes untyped.
    config_class: Any = LlamaConfig
    model_class: Any = LlamaForCausalLM
    tok = train_tokenizer(texts, int(config.pop("tokenizer_vocab", 1024)))
    torch.manual_seed(seed)
    cfg = config_class(
        **config, vocab_size=tok.get_vocab_size(), pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model_class(cfg).save_pretrained(out)
    tok.save(str(out / TOKENIZER_NAME))
    return out


def simulated_context(rows: int = 3600, seed: int = 11) -> tuple[LineContext, ExtrusionLine]:
    """SPC centre, sigma, MR-bar and correlation of the simulated line's normal operation."""
    from agent.core.spc import fit_imr
    from agent.demo.simulator.process import historian

    data = historian(rows, seed=seed)
    limits = fit_imr(data, sigma="larger")
    context = LineContext(
        line="extruder-1", channels=SIGNAL_NAMES, units=tuple(s.unit for s in SIGNALS),
        center=limits.center, sigma=limits.sigma, mr_bar=limits.mr_bar,
        correlation=np.asarray(np.corrcoef(data, rowvar=False)),
    )  # fmt: skip
    return context, ExtrusionLine(seed=seed)


def _contributions(rows: np.ndarray, ctx: LineContext) -> tuple[float, ...]:
    # Without the VAE, a tag's unusualness is the largest of: its end level in sigmas, its
    # recent noise against normal, a frozen reading, and how far it sits from what its
    # strongest partner predicts (in residual sigmas / 2).
    tail = rows[-8:].mean(axis=0) - ctx.center
    z = np.abs(tail) / ctx.sigma
    noise = np.median(np.abs(np.diff(rows[-13:], axis=0)), axis=0) / np.maximum(ctx.mr_bar, 1e-9)
    stuck = np.where(np.ptp(rows[-8:], axis=0) == 0.0, 6.0, 0.0)
    apart = np.zeros(len(ctx.channels))
    if ctx.correlation is not None:
        for i in range(len(ctx.channels)):
            for j in range(len(ctx.channels)):
                r = float(ctx.correlation[i, j])
                if i != j and abs(r) >= 0.7:
                    predicted = r * ctx.sigma[i] / ctx.sigma[j] * tail[j]
                    spread = ctx.sigma[i] * np.sqrt(max(1.0 - r * r, 1e-6))
                    apart[i] = max(apart[i], abs(tail[i] - predicted) / spread / 2)
    return tuple(float(v) for v in np.maximum.reduce([z, noise, stuck, apart]))


def _rules(rows: np.ndarray, ctx: LineContext) -> dict[str, tuple[str, ...]]:
    """SPC rules each tag broke in the window's last 16 rows, as the device would see them."""
    from agent.core.spc import ImrChart, ImrLimits
    from agent.pipeline.detectors.spc import SpcDetector

    chart = ImrChart(ImrLimits(ctx.center, ctx.sigma, ctx.mr_bar, ctx.nsigmas), 15)
    seen: dict[str, set[str]] = {}
    for k, row in enumerate(rows):
        state = chart.update(row)
        if k >= len(rows) - 16:
            for i, tag in enumerate(ctx.channels):
                word = SpcDetector.describe(state, i, True)
                if word != "in-control":
                    seen.setdefault(tag, set()).add(word)
    return {tag: tuple(sorted(words)) for tag, words in seen.items()}


def simulated_facts(count: int, catalogue: Catalogue, seed: int = 0) -> list[Facts]:
    """Facts of `count` simulated fault windows (all fault kinds, random sizes and timing)."""
    ctx, _ = simulated_context()
    rng = random.Random(seed)
    found = []
    for n in range(count):
        kind, signal, size = FAULTS[n % len(FAULTS)]
        line = ExtrusionLine(seed=seed * 1000 + n)
        warm = rng.randint(40, 80)
        rows = [line.step() for _ in range(warm)]
        line.inject(Fault(kind, signal, size * rng.uniform(0.7, 1.5)))
        rows += [line.step() for _ in range(rng.randint(12, 40))]
        window = np.asarray(rows[-64:], dtype=np.float64)
        ts = 1_767_225_600.0 + np.arange(len(window), dtype=np.float64)
        contrib = _contributions(window, ctx)
        event = Event(
            ts=float(ts[-1]), line=ctx.line, kind=EventKind.ANOMALY, state=EventState.RAISED,
            detector="vae", severity=700, message="", tag=SIGNAL_NAMES[int(np.argmax(contrib))],
            score=round(max(contrib), 2), threshold=3.0,
        )  # fmt: skip
        snap = Snapshot(event, ts, window, contrib, _rules(window, ctx))
        found.append(build_facts(snap, ctx, catalogue))
    return found


def skab_facts(folder: Path, catalogue: Catalogue, limit: int = 200) -> list[Facts]:
    """Facts of SKAB's labelled anomaly windows (semicolon CSVs with an `anomaly` column).

    SKAB's tags are not the extrusion line's: they get their own context (SPC limits from the
    anomaly-free rows of each file), and the catalogue matches none of them, so the teacher
    learns to say "no known failure mode fits" as well."""
    found: list[Facts] = []
    for path in sorted(folder.rglob("*.csv")):
        import csv

        with path.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
        if not rows or "anomaly" not in rows[0]:
            continue
        tags = [c for c in rows[0] if c not in ("datetime", "anomaly", "changepoint")]
        data = np.array([[float(r[c]) for c in tags] for r in rows])
        labels = np.array([float(r["anomaly"]) for r in rows]) > 0
        normal = data[~labels]
        if normal.shape[0] < 64 or not labels.any():
            continue
        from agent.core.spc import fit_imr

        limits = fit_imr(normal, sigma="larger")
        names = tuple(t.replace(" ", "_").lower() for t in tags)
        ctx = LineContext(
            line=path.parent.name or "skab", channels=names, units=("",) * len(names),
            center=limits.center, sigma=limits.sigma, mr_bar=limits.mr_bar,
            correlation=np.nan_to_num(np.corrcoef(normal, rowvar=False)),
        )  # fmt: skip
        onset = int(np.argmax(labels))
        for end in range(onset + 16, min(len(data), onset + 200), 40):
            window = data[max(0, end - 64) : end]
            ts = np.arange(window.shape[0], dtype=np.float64) + end
            contrib = _contributions(window, ctx)
            event = Event(
                ts=float(ts[-1]), line=ctx.line, kind=EventKind.ANOMALY,
                state=EventState.RAISED, detector="vae", severity=700, message="",
                tag=names[int(np.argmax(contrib))], score=round(max(contrib), 2), threshold=3.0,
            )  # fmt: skip
            found.append(build_facts(Snapshot(event, ts, window, contrib), ctx, Catalogue(())))
            if len(found) >= limit:
                return found
    return found


Teacher = Callable[[Facts, str], str]


def teacher_from(spec: str, max_new_tokens: int = 128) -> Teacher:
    """`template`, or a Hugging Face model directory that explains greedily from the prompt."""
    if spec == "template":
        return render
    import torch
    from tokenizers import Tokenizer

    from export.llm import load_source

    model = load_source(Path(spec))
    tok = Tokenizer.from_file(str(Path(spec) / TOKENIZER_NAME))
    eos = model.config.eos_token_id

    def explain(facts: Facts, language: str) -> str:
        ids = tok.encode(build_prompt(facts, language), add_special_tokens=False).ids
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
            )  # fmt: skip
        return str(tok.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)).strip()

    return explain


@dataclass(frozen=True)
class DistilOptions:
    """What `lineside-export distil` was asked to do."""

    teacher: str
    student: Path
    out: Path
    examples: int = 1600
    steps: int = 3000
    batch: int = 8
    lr: float = 3e-3
    languages: tuple[str, ...] = ("en", "zh")
    quantization: str = "int8"
    skab: Path | None = None
    seed: int = 0
    force: bool = False


def _student(options: DistilOptions, texts: list[str], work: Path) -> Path:
    if options.student.is_dir():
        return options.student
    if options.student.suffix == ".json" and options.student.is_file():
        try:
            config = json.loads(options.student.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ExportError(f"{options.student}: not a JSON LlamaConfig: {exc}") from exc
        return model_from_config(config, texts, work / "student-init", options.seed)
    raise ExportError(
        f"{options.student}: --student must be a Hugging Face model dir or a JSON LlamaConfig"
    )


def fine_tune(
    model_dir: Path, pairs: list[tuple[str, str]], options: DistilOptions, out: Path
) -> list[float]:
    """Fine-tune on prompt -> answer pairs (loss on the answer); save to `out`; the losses."""
    import torch
    from tokenizers import Tokenizer

    from export.llm import load_source

    torch.manual_seed(options.seed)
    model = load_source(model_dir).train()
    tok = Tokenizer.from_file(str(model_dir / TOKENIZER_NAME))
    bos, eos = model.config.bos_token_id, model.config.eos_token_id
    examples = []
    for prompt, answer in pairs:
        p = ([bos] if bos is not None else []) + tok.encode(prompt, add_special_tokens=False).ids
        a = [*tok.encode(answer, add_special_tokens=False).ids, eos]
        examples.append((p + a, [-100] * len(p) + a))
    limit = int(model.config.max_position_embeddings)
    if max(len(ids) for ids, _ in examples) > limit:
        raise ExportError(f"an example is longer than the student's {limit} positions")
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr)
    # Warm-up then cosine decay, and clipped gradients: copying the facts' numbers into the
    # answer (what the guard checks) only appears late, after ~1,500 steps of the tiny student,
    # and a constant rate of 3e-3 kept shaking it loose.
    warmup = max(1, options.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / options.steps)),
    )
    rng = random.Random(options.seed)
    losses = []
    for _ in range(options.steps):
        batch = rng.sample(examples, min(options.batch, len(examples)))
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [eos] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval().save_pretrained(out)
    (out / TOKENIZER_NAME).write_bytes((model_dir / TOKENIZER_NAME).read_bytes())
    return losses


def evaluate(
    onnx_dir: Path,
    facts: list[Facts],
    teacher: Teacher,
    languages: tuple[str, ...],
    catalogue: Catalogue,
) -> dict[str, Any]:
    """Held-out score of the exported student: grounded (passes the guard) and exact rates."""
    lm = OnnxCausalLM(onnx_dir)
    grounded = exact = total = 0
    reasons: dict[str, int] = {}
    for f in facts:
        for language in languages:
            out = lm.generate(lm.encode(build_prompt(f, language)), 160)
            text = lm.decode(out.tokens).strip()
            verdict = check(text, f, catalogue, language=language)
            grounded += verdict.accepted
            if not verdict.accepted:
                reasons[verdict.reason] = reasons.get(verdict.reason, 0) + 1
            exact += text == teacher(f, language)
            total += 1
    return {
        "answers": total,
        "grounded": grounded / total,
        "exact": exact / total,
        "rejected": reasons,
    }


def run_distil(
    options: DistilOptions, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Generate facts, let the teacher explain, fine-tune the student, export, evaluate."""
    import tempfile

    from export.bundle import check_out_dir
    from export.llm import export_llm

    check_out_dir(options.out, options.force)
    catalogue = load_catalogue(firmware_configs() / "failure-modes" / "demo-extruder.toml")
    facts = simulated_facts(options.examples, catalogue, options.seed)
    if options.skab is not None:
        if not options.skab.is_dir():
            raise ExportError(f"{options.skab}: --skab must be the folder of SKAB's CSV files")
        facts += skab_facts(options.skab, catalogue)
    rng = random.Random(options.seed)
    rng.shuffle(facts)
    held = facts[: max(4, len(facts) // 10)]
    train = facts[len(held) :]
    teacher = teacher_from(options.teacher)
    pairs = [(build_prompt(f, lang), teacher(f, lang)) for f in train for lang in options.languages]
    say(f"{len(train)} training facts, {len(held)} held out; {len(pairs)} teacher explanations")
    with tempfile.TemporaryDirectory(
        dir=options.out.parent if options.out.parent.exists() else None
    ) as tmp:
        work = Path(tmp)
        student = _student(options, [p + " " + a for p, a in pairs], work)
        tuned = work / "student"
        losses = fine_tune(student, pairs, options, tuned)
        say(f"fine-tuned {options.steps} steps: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        meta = export_llm(tuned, options.out, options.quantization, force=options.force)
    scores = evaluate(options.out, held, teacher, options.languages, catalogue)
    report = {
        "losses": [losses[0], losses[-1]],
        "pairs": len(pairs),
        "held_out": len(held),
        **scores,
    }
    meta["distillation"] = report | {
        "teacher": options.teacher if options.teacher == "template" else Path(options.teacher).name
    }
    (options.out / "llm.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
