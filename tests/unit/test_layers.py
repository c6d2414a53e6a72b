"""The floor plan holds: no import cycle in agent/, every import points down a level, and the
pure core and pipeline import no I/O library nor the services above them.

The levels, lowest first, are drawn in docs/architecture.md; an import may only go to its own
level or a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "agent"

#: Lowest first. A module's level is that of the longest prefix listed here.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("agent", "agent.types", "agent.errors", "agent.paths"),
    ("agent.core", "agent.ops"),
    ("agent.bundles.manifest", "agent.bundles.bundle"),
    ("agent.config",),
    ("agent.explain",),
    ("agent.pipeline",),
    ("agent.bundles",),
    ("agent.sources", "agent.sinks"),
    ("agent.runtime",),
    ("agent.demo",),
    ("agent.cli", "agent.__main__"),
)
PURE = ("agent.core", "agent.pipeline")
#: What the pure levels never import: the event loop, protocol and storage libraries, and the
#: services that do I/O.
NOT_IN_PURE = (
    "asyncio", "pymodbus", "asyncua", "serial", "sqlite3", "socket", "threading",
    "agent.runtime", "agent.sinks", "agent.sources", "agent.cli", "agent.demo",
)  # fmt: skip


def module_name(path: Path) -> str:
    """`agent/pipeline/line.py` -> `agent.pipeline.line` (a package is its `__init__`)."""
    parts = list(path.relative_to(AGENT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module this file imports, at any depth of the file (lazy imports count)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            subs = {f"{base}.{a.name}" for a in node.names} & modules
            found.update(subs)
            if len(subs) < len(node.names):  # names from the package itself, not submodules
                found.add(base)
    return found


def graph() -> dict[str, set[str]]:
    """agent's own import graph, module -> the agent modules it imports."""
    files = {module_name(p): p for p in AGENT.rglob("*.py")}
    modules = set(files)
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        own = set()
        for target in imports_of(path, modules):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                own.add(target)
        edges[name] = own
    return edges


def level(module: str) -> int:
    """The level of a module: that of the longest listed prefix."""
    best, depth = -1, -1
    for i, names in enumerate(LEVELS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = i, len(prefix)
    assert best >= 0, f"{module} has no level in LEVELS: add it there and to the docs"
    return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_every_import_points_down_or_across() -> None:
    upward = [
        f"{a} ({level(a)}) -> {b} ({level(b)})"
        for a, targets in graph().items()
        for b in sorted(targets)
        if level(b) > level(a)
    ]
    assert upward == []


PURE_FILES = sorted(p for d in PURE for p in (AGENT.parent / d.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(AGENT.parent)))
def test_the_core_and_the_pipeline_stay_pure(path: Path) -> None:
    everything = {module_name(p) for p in AGENT.rglob("*.py")}
    bad = sorted(
        m
        for m in imports_of(path, everything)
        if any(m == x or m.startswith(x + ".") for x in NOT_IN_PURE)
    )
    assert bad == [], f"{module_name(path)} imports {bad}"


def area(module: str) -> str:
    """`agent.sinks.scada.server` -> `sinks` ("" for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_sources_and_sinks_never_import_each_other() -> None:
    """I/O in and I/O out meet only in the runtime, which wires them to the pipeline."""
    crossing = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in sorted(targets)
        if {area(a), area(b)} == {"sources", "sinks"}
    ]
    assert crossing == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    edges = {"agent.core.a": {"agent.runtime.b"}, "agent.runtime.b": {"agent.core.a"}}
    assert cycles(edges) == [["agent.core.a", "agent.runtime.b"]]
    assert level("agent.runtime.b") > level("agent.core.a")


# --- tests/unit/ needs neither torch nor a subprocess --------------------------------------

TESTS = AGENT.parent / "tests"
#: What a unit test never imports (itself, or through the helper modules under tests/ it uses).
NOT_IN_UNIT = ("torch", "export.train", "export.pipeline", "subprocess")


def imports_in_tests(path: Path) -> set[str]:
    """Every module a file under tests/ imports (lazy imports count; `from a import b` counts
    as both `a` and `a.b`, so `from export import pipeline` is `export.pipeline`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def trained_fixtures() -> set[str]:
    """`bundle_dir` (trained by torch) and every shared fixture that requests it, at any depth."""
    fixtures: dict[str, set[str]] = {}
    for conftest in (TESTS / "conftest.py", TESTS / "unit" / "conftest.py"):
        if conftest.exists():
            for node in ast.walk(ast.parse(conftest.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    fixtures[node.name] = {a.arg for a in node.args.args + node.args.kwonlyargs}
    trained = {"bundle_dir"}
    while True:
        more = {name for name, args in fixtures.items() if args & trained} - trained
        if not more:
            return trained
        trained |= more


def unit_test_problems(path: Path, trained: set[str]) -> list[str]:
    """Why a file may not be a unit test: what it imports or requests that needs torch or a
    subprocess, following the helper modules under tests/ that it imports."""
    problems: list[str] = []
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        via = "" if current == path else f" (through {current.relative_to(TESTS.parent)})"
        for module in sorted(imports_in_tests(current)):
            if any(module == x or module.startswith(x + ".") for x in NOT_IN_UNIT):
                problems.append(f"imports {module}{via}")
            helper = TESTS.parent / (module.replace(".", "/") + ".py")
            if module.startswith("tests.") and helper.is_file():
                todo.append(helper)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            problems += [f"{node.name} requests {a.arg}" for a in args if a.arg in trained]
        elif isinstance(node, ast.Call):  # usefixtures("bundle_dir"), getfixturevalue(...)
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("usefixtures", "getfixturevalue"):
                problems += [
                    f"{name}({a.value!r})"
                    for a in node.args
                    if isinstance(a, ast.Constant) and a.value in trained
                ]
    return problems


def test_unit_tests_need_neither_torch_nor_a_subprocess(tmp_path: Path) -> None:
    trained = trained_fixtures()
    assert {"bundle_dir", "kit"} <= trained
    # The checker sees each kind of problem before it is trusted to see none.
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import subprocess\nfrom export import pipeline\nimport pytest\n\n"
        "@pytest.mark.usefixtures('bundle_dir')\ndef test_a(kit):\n    import torch.nn\n"
    )
    assert unit_test_problems(sample, trained) == [
        "imports export.pipeline", "imports subprocess", "imports torch.nn",
        "test_a requests kit", "usefixtures('bundle_dir')",
    ]  # fmt: skip
    found = {
        str(path.relative_to(TESTS.parent)): problems
        for path in sorted((TESTS / "unit").rglob("*.py"))
        if (problems := unit_test_problems(path, trained))
    }
    assert found == {}, "these belong under tests/integration/: " + str(found)
