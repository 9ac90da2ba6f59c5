"""The package's modules import one another one way: a command stands on what it uses, never the reverse."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rfr_pipeline"


def package_imports() -> dict[str, set[str]]:
    """module → the package's modules it imports, anywhere in it (function-level imports included)."""
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:  # from . import x, y
                    found |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rfr_pipeline."):
                found.add(node.module.split(".")[1])
        graph[path.stem] = (found & modules) - {path.stem, "__init__"}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = package_imports()
    cycles = []

    def visit(module, trail):
        for imported in sorted(graph[module]):
            if imported in trail:
                cycles.append(trail[trail.index(imported):] + [imported])
            elif len(trail) < len(graph):
                visit(imported, trail + [imported])

    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, f"import cycles: {sorted({' → '.join(c) for c in cycles})}"
    assert "cli" not in graph["batch"] and "jobs" in graph["batch"] and "jobs" in graph["cli"]
