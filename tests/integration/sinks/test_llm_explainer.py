"""The LLM explainer end to end on the device side: an exported tiny model decoded in the real
worker process, its answer judged by the guard; and `lineside-export distil` on a small run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config.explain import ExplainConfig
from agent.explain.facts import build_facts
from agent.explain.guard import REASONS
from agent.explain.template import render
from agent.sinks.explainer import ExplainerSink
from export.distil import model_from_config
from export.llm import export_llm
from tests.explain_helpers import Collector, context, demo_catalogue, pressure_snapshot, run_sink
from tests.tiny_llm import CORPUS, TINY

GUARD_REASONS = set(REASONS)


@pytest.mark.timeout(300)
async def test_llm_worker_decodes_and_the_guard_judges(tmp_path: Path) -> None:
    hf = model_from_config(dict(TINY), CORPUS, tmp_path / "hf", seed=1)
    model = tmp_path / "onnx"
    export_llm(hf, model, "int8")
    catalogue = demo_catalogue()
    config = ExplainConfig(
        mode="llm", model=model, catalogue=catalogue, max_new_tokens=24, max_seconds=5.0,
        timeout_s=60.0,
    )  # fmt: skip
    out = Collector()
    sink = ExplainerSink(config, context(), [out])
    snap = pressure_snapshot()
    sink.send(snap)
    (only,) = await run_sink(sink, out, 1, timeout=120)
    info = sink.last_info
    assert 1 <= info["tokens"] <= 24 and info["stopped"] in ("eos", "tokens", "time")
    assert info["first_token_s"] > 0
    # A random-weight model writes nonsense: the guard must refuse it and the template is used.
    assert only.source == "template"
    assert only.reason.split(":")[0] in GUARD_REASONS
    assert only.text == render(build_facts(snap, context(), catalogue), "en")
    assert sum(sink.stats.rejected.values()) == 1


@pytest.mark.timeout(600)
def test_distil_cli_small_run(tmp_path: Path) -> None:
    student = tmp_path / "student.json"
    student.write_text(json.dumps(TINY | {"max_position_embeddings": 1024}))
    out = tmp_path / "explainer"
    result = subprocess.run(
        [
            sys.executable, "-m", "export", "distil", "--student", str(student),
            "--out", str(out), "--examples", "12", "--steps", "8", "--languages", "en",
            "--quantize", "int4",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((out / "llm.json").read_text())
    d = meta["distillation"]
    assert d["teacher"] == "template" and d["pairs"] == 8 and d["answers"] == 4
    assert d["losses"][1] < d["losses"][0]  # it learned something from the teacher
    assert 0.0 <= d["grounded"] <= 1.0 and meta["quantization"] == "int4"
    assert "held-out answers 4: grounded" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "export", "distil", "--student", str(tmp_path / "nope"),
         "--out", str(tmp_path / "x")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "--student must be" in bad.stderr
