"""The project's module-level imports: no cycles anywhere, and the layers import downwards only.

The graph is read from the source with ``ast`` (nothing is imported): an edge for each ``import``
at the top of a module or inside a top-level ``try``/``if``, ``if TYPE_CHECKING:`` included (two
modules that need each other's types are one module, or share a third). Imports inside functions
run later and do not make a module-level cycle.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("minewatch", "detectors", "ingest", "api", "simulator", "group")
# package: the packages it must not import. `group` (the group deployment: NATS servers, streams,
# the forwarder, `group up`) sits on top of the ingestor's MQTT client and the shared bottom layer;
# nothing below imports it, and it does not reach into the API or the simulator (it runs them as
# commands).
FORBIDDEN = {
    "minewatch": {"detectors", "ingest", "api", "simulator", "group"},
    "detectors": {"ingest", "api", "simulator", "group"},
    "ingest": {"group"},
    "simulator": {"group"},
    "api": {"group"},
    "group": {"api", "simulator"},
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    out: set[str] = set()
    base = name.split(".") if is_package else name.split(".")[:-1]

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    stem = base[:len(base) - node.level + 1]
                    mod = ".".join(stem + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for a in node.names:  # `from pkg import module` needs the module, `from pkg import name` the package
                    out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)

    visit(tree.body)
    return out


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` with the collector off: under CPython 3.11.7 a finalizer run by the collector
    while the tree is being built (a socket an earlier test left to it, say) can end the parse in
    ``SystemError: AST constructor recursion depth mismatch``, an interpreter fault, not the file's."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(), str(path))
    finally:
        if was_on:
            gc.enable()


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level."""
    files = {_module_name(p, root): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        imported = _top_level_imports(_parse(path), name, path.name == "__init__.py",
                                      set(files))
        graph[name] = {m for m in imported if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_cycles_finds_a_cycle_and_only_it() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_package_and_type_checking_imports_not_those_in_functions(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nfrom .b import x\nif TYPE_CHECKING:\n    import p.c\n")
    (pkg / "b.py").write_text("def f():\n    import p.a\nx = 1\n")
    (pkg / "c.py").write_text("try:\n    from p import a\nexcept ImportError:\n    pass\n")
    assert import_graph(tmp_path, ("p",)) == {"p": {"p.a"}, "p.a": {"p.b", "p.c"}, "p.b": set(), "p.c": {"p.a"}}


def test_no_module_level_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_layers_import_downwards_only() -> None:
    wrong = sorted((mod, dep) for mod, deps in import_graph().items() for dep in deps
                   if dep.split(".")[0] in FORBIDDEN.get(mod.split(".")[0], set()))
    assert wrong == []
