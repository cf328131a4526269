"""The package's layering, read from the source: imports between its parts point one way,
``training`` knows nothing of the models but the scorer interface, and modules stay small.

Only imports that run when a module is imported count: those at module level, including
inside module-level ``if`` / ``try`` / ``with`` blocks. Imports under ``if TYPE_CHECKING:``
(annotations) and inside functions (deferred on purpose) are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tripletrec

PACKAGE = Path(tripletrec.__file__).parent
#: The longest module allowed, in lines.
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imported(nodes: list[ast.stmt], package: str) -> Iterator[str]:
    """What ``nodes`` import when they run at import time: modules, and for ``from m import
    n`` both ``m`` and ``m.n`` (``n`` may be a module); relative imports resolved against
    ``package``."""
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                bits = package.split(".")
                module = ".".join(bits[: len(bits) - node.level + 1] + ([module] if module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _imported(node.body + node.orelse, package)
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            yield from _imported(node.body + handlers + node.orelse + node.finalbody, package)
        elif isinstance(node, ast.With):
            yield from _imported(node.body, package)


def _module_imports() -> dict[str, set[str]]:
    """Every tripletrec module, and the tripletrec modules it imports at import time."""
    imports = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports[name] = {
            target
            for target in _imported(tree.body, package)
            if target.split(".")[0] == PACKAGE.name
        }
    return imports


def _part(module: str) -> str | None:
    """The top-level part a module belongs to (a subpackage or a top-level module)."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else None


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_parts_of_the_package_import_each_other_without_a_cycle():
    edges: dict[str, set[str]] = {}
    for module, targets in _module_imports().items():
        source = _part(module)
        for target in targets:
            part = _part(target)
            if source is not None and part is not None and part != source:
                edges.setdefault(source, set()).add(part)
    assert _cycles(edges) == []
    # The layers the cycle check protects, named: models may use training and evaluation,
    # never the other way round.
    assert "models" not in edges.get("training", set())
    assert "models" not in edges.get("evaluation", set())


def _outside_the_interface(target: str) -> bool:
    """Whether ``target`` is a part of ``tripletrec.models`` besides its scorer interface
    (the package itself holds nothing but its docstring)."""
    interface = "tripletrec.models.interface"
    return (
        _part(target) == "models"
        and target != "tripletrec.models"
        and target != interface
        and not target.startswith(f"{interface}.")
    )


def test_training_imports_only_the_scorer_interface_of_the_models():
    found = {
        module: sorted(filter(_outside_the_interface, targets))
        for module, targets in _module_imports().items()
        if _part(module) == "training"
    }
    assert "tripletrec.training.loop" in found
    assert {module: targets for module, targets in found.items() if targets} == {}
    assert _outside_the_interface("tripletrec.models.base")
    assert not _outside_the_interface("tripletrec.models.interface.Scorer")


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_skips_annotations_and_deferred_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import tripletrec.data\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n"
        "    from tripletrec.models import base\n"
        "try:\n"
        "    import tripletrec.plots\n"
        "except ImportError:\n"
        "    import tripletrec.report\n"
        "def later():\n"
        "    import tripletrec.cli\n"
    )
    found = set(_imported(ast.parse(source).body, "tripletrec.evaluation"))
    assert found == {
        "typing",
        "typing.TYPE_CHECKING",
        "tripletrec.data",
        "tripletrec.evaluation",
        "tripletrec.evaluation.sibling",
        "tripletrec.plots",
        "tripletrec.report",
    }


def test_no_module_is_longer_than_the_limit():
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}
