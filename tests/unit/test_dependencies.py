"""Every third-party package the code imports is declared in pyproject.toml.

An import that only works because another package happens to pull it in breaks on the next
upgrade of that package, so each top-level import in the shipped packages must map (through
``importlib.metadata.packages_distributions``) to a distribution named in ``[project]``
dependencies or one of its extras other than `test`.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "eval", "finetune", "plugins", "prompts")
FIRST_PARTY = {*PACKAGES, "tests"}
# A separate distribution with its own pyproject.toml (it depends on recsage itself).
OWN_DISTRIBUTIONS = (ROOT / "plugins" / "sample_plugin",)


def _dist_key(name: str) -> str:
    """PEP 503 normal form: "Open_Clip-Torch" and "open-clip-torch" are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for name, extra in project.get("optional-dependencies", {}).items():
        if name != "test":  # what the tests need is not what a user installs
            requirements += extra
    return {_dist_key(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r.strip()).group()) for r in requirements}


def _modules() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not any(own in path.parents for own in OWN_DISTRIBUTIONS):
                files.append(path)
    return files


def _top_level_imports(path: Path) -> set[str]:
    """Top-level names of every absolute import, including imports inside functions (lazy imports
    of heavy packages are still requirements)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Import name -> the modules (relative paths) that import it, for non-stdlib, non-project names."""
    found: dict[str, set[str]] = {}
    for path in _modules():
        for name in _top_level_imports(path):
            if name in sys.stdlib_module_names or name in FIRST_PARTY:
                continue
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_walk_sees_the_shipped_packages():
    imports = third_party_imports()
    assert len(_modules()) > 50
    assert {"numpy", "torch", "pydantic"} <= set(imports)  # sanity: a broken walk would pass vacuously


def test_every_third_party_import_is_declared_in_pyproject():
    declared = _declared()
    distributions = packages_distributions()
    problems = []
    for name, where in sorted(third_party_imports().items()):
        dists = {_dist_key(d) for d in distributions.get(name, ())}
        if not dists:
            problems.append(f"{name}: not installed, so its distribution is unknown (imported by {sorted(where)})")
        elif not dists & declared:
            problems.append(f"{name}: from {sorted(dists)}, not in pyproject.toml (imported by {sorted(where)})")
    assert not problems, "undeclared imports:\n" + "\n".join(problems)
