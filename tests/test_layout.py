"""The layout keeps the architecture readable (issue 18): imports run one way, and the benchmarks stay out of the
package that ships in the training image.

Read from the source with `ast` (nothing is imported), so this runs in the fast lane in about a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"airline_hpo": REPO / "trainer" / "airline_hpo", "mlflow_platform": REPO / "infra" / "mlflow_platform"}
# Entry points run as `python -m` by `mlflow run`: nothing inside the package may import them.
ENTRY_MODULES = {"airline_hpo.train", "airline_hpo.serve_check", "airline_hpo.demo"}
# The bottom layer of each package: it imports nothing else from its package.
BOTTOM = {"airline_hpo.errors", "mlflow_platform.core"}


def _modules(package: str) -> dict[str, Path]:
    root = PACKAGES[package]
    found = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that `name` imports (at any depth in the file: a deferred import still binds)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_init(graph_name: str, package: str) -> bool:
    return (PACKAGES[package].joinpath(*graph_name.split(".")[1:]) / "__init__.py").exists()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_circle(package: str) -> None:
    graph = _graph(package)
    # A package's __init__ re-exporting its own modules is not a circle through them: leave those edges out.
    for name in graph:
        if _is_package_init(name, package):
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    assert _cycle(graph) is None, f"import circle in {package}: {' -> '.join(_cycle(graph) or [])}"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_run_downward(package: str) -> None:
    upward = []
    for name, targets in _graph(package).items():
        for target in targets:
            if target in ENTRY_MODULES:
                upward.append(f"{name} imports the entry point {target}")
            if name.startswith(target + ".") and target != package:
                upward.append(f"{name} imports its own parent package {target}")
            for bottom in BOTTOM:
                if (name == bottom or name.startswith(bottom + ".")) and not (
                    target in (bottom, package) or target.startswith(bottom + ".")
                ):
                    upward.append(f"{name} (bottom layer) imports {target}")
    assert not upward, "imports that run back up:\n" + "\n".join(sorted(upward))


def test_no_benchmark_in_the_image_package() -> None:
    found = [name for name in _modules("airline_hpo") if "bench" in name.rpartition(".")[2]]
    importing = [
        name
        for name, path in _modules("airline_hpo").items()
        if any(
            (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "benchmarks")
            or (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "benchmarks" for a in n.names))
            for n in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert not found and not importing, f"benchmarks belong in benchmarks/: {found + importing}"
