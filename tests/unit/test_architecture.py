"""Dependencies point one way: serving code never reaches into training or evaluation code.

Walks every import statement (module level and inside functions) of the project's packages and
fails on any import cycle between modules, on `agent` (outside `agent/cli`) importing `eval`,
`finetune` or `agent.cli`, and on `eval` importing `finetune`. docs/architecture.md explains the
layering this test keeps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "eval", "finetune", "plugins", "prompts")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "sample_plugin" in path.parts:  # a separately installed example package
                continue
            modules[_module_name(path)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported dotted name lives in (``a.b.c`` may be attribute c of a.b)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules ``module`` imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            target = _resolve(name, modules)
            if target and target != module:
                found.add(target)
    # `from agent.x import y` also names the package agent.x itself; a package importing its own
    # submodules (its __init__) is not a dependency of those submodules on it
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS, colours white/grey/black)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            if colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def _packages_of(graph):
    """Edges between modules where the importer is not a package __init__ re-exporting its own children."""
    return {m: {t for t in targets if not _in(t, m)} for m, targets in graph.items()}


def test_there_is_no_import_cycle(graph):
    cycle = find_cycle(_packages_of(graph))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


FORBIDDEN = [
    # (importer package, imported package, unless the importer is under this package)
    ("agent", "eval", "agent.cli"),
    ("agent", "finetune", "agent.cli"),
    ("agent", "agent.cli", "agent.cli"),
    ("eval", "finetune", None),
    ("plugins", "eval", None),
    ("plugins", "finetune", None),
]


@pytest.mark.parametrize(("importer", "imported", "except_under"), FORBIDDEN)
def test_dependencies_point_one_way(graph, importer, imported, except_under):
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _in(module, importer) and not (except_under and _in(module, except_under))
        for target in targets
        if _in(target, imported)
    )
    assert not bad, f"{importer} must not import {imported}:\n" + "\n".join(bad)


def test_the_checker_sees_cycles_and_forbidden_edges():
    """The walker itself: a cycle and a function-level import are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    modules = project_modules()
    # agent/cli imports eval lazily inside functions: the walker must see those imports too
    cli_imports = set().union(*(imports_of(m, p, modules) for m, p in modules.items() if _in(m, "agent.cli")))
    assert any(_in(t, "eval") for t in cli_imports)

STAGE_IMPORTS = {
    "agent.core": {},
    "agent.llm": {"agent.core"},
    "agent.llm_server": {"agent.core", "agent.llm"},
    "agent.provision": {"agent.core", "agent.llm", "agent.llm_server"},
    "agent.ingest": {"agent.core", "agent.plugins", "prompts"},
    "agent.retrieval": {"agent.core", "agent.ingest"},
    "agent.rerank": {"agent.core", "agent.ingest", "agent.llm", "agent.provision", "agent.retrieval", "prompts"},
    "agent.explain": {"agent.core", "agent.ingest", "agent.llm", "agent.provision", "agent.rerank", "prompts"},
    "agent.recommend": {"agent.core", "agent.explain", "agent.ingest", "agent.plugins", "agent.rerank", "agent.retrieval"},
    "agent.chat": {"agent.core", "agent.ingest", "agent.llm", "agent.plugins", "agent.provision", "prompts"},
    "agent.server": {"agent.core", "agent.recommend", "agent.retrieval"},
    "agent.plugins": {"agent.core", "agent.hookspecs", "agent.ingest"},
}
"""What each serving stage may import (docs/architecture.md's table says the same): a stage reaches
down the data flow, never up it. agent.cli, eval, finetune and plugins sit on top (rules above)."""


def stage_of(module: str) -> str:
    """``agent.rerank.packing`` -> ``agent.rerank``; ``agent.llm`` stays; other packages: their top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agent" and len(parts) > 1 else parts[0]


def stage_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        stage = stage_of(module)
        if stage not in STAGE_IMPORTS:
            continue
        for target in targets:
            other = stage_of(target)
            if other != stage and other != "agent" and other not in STAGE_IMPORTS[stage]:
                bad.append(f"{module} ({stage}) imports {target} ({other})")
    return sorted(bad)


def test_each_stage_imports_only_the_stages_below_it(graph):
    bad = stage_violations(graph)
    assert not bad, "imports against the stage order (update STAGE_IMPORTS and docs/architecture.md only "\
                    "if the design changed):\n" + "\n".join(bad)


def test_the_stage_check_flags_an_upward_import():
    fake = {"agent.retrieval.ease": {"agent.server.sessions", "agent.core.io"}, "agent.core.io": set()}
    assert stage_violations(fake) == ["agent.retrieval.ease (agent.retrieval) imports agent.server.sessions "
                                      "(agent.server)"]
