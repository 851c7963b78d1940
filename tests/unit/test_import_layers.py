"""The package's imports run one way (ARCHITECTURE.md, "Layers").

Read with :mod:`ast`, not by importing: every ``import`` statement counts,
including those under ``if TYPE_CHECKING:`` and inside functions, so a cycle
cannot hide from this test.  Also: no dynamic imports in the package, at most
six modules directly in ``pyfetchmail/``, and none over 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pyfetchmail"

#: Layers, top to bottom: a module may import from its own layer's package or
#: from any layer below, never from above (cli → service → engine → ...).
LAYERS: list[set[str]] = [
    {"cli", "__main__"},
    {"service"},
    {"engine"},
    {"protocols", "delivery"},
    {"mail", "state"},
    {"net", "auth"},
    {"config"},
    {"log", "errors", "exitcodes", "__init__"},
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that *path* imports, resolved to module names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{alias.name}" for alias in node.names]
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _top(module: str) -> str:
    """The first name below ``pyfetchmail`` (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module} is in no layer of this test")


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_run_one_way() -> None:
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in _graph().items()
        for dep in sorted(deps)
        if _layer(dep) < _layer(mod)
    ]
    assert upward == []


def test_protocols_and_delivery_do_not_import_each_other() -> None:
    crossing = [
        f"{mod} imports {dep}"
        for mod, deps in _graph().items()
        for dep in deps
        if {_top(mod), _top(dep)} == {"protocols", "delivery"}
    ]
    assert crossing == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_no_dynamic_import(path: Path) -> None:
    tree = ast.parse(path.read_text())
    dynamic = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            if "importlib" in names or (mod or "").startswith("importlib"):
                dynamic.append(f"line {node.lineno}: importlib")
        if isinstance(node, ast.Name) and node.id == "__import__":
            dynamic.append(f"line {node.lineno}: __import__")
    assert dynamic == []


def test_few_top_level_modules() -> None:
    top = sorted(
        p.name for p in PACKAGE.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}
    )
    assert len(top) <= 6, top


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_module_size(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 600
