"""The package's import graph (every `import gearlib...` anywhere in gearlib/, module level or not) has no
cycle, and gearlib modules import each other at module level except in the CLI's lazy entry points."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[2] / "gearlib"
# Modules whose functions may import gearlib lazily: the command line loads them for `gearlib --help`,
# which must not import torch.
LAZY_ENTRY_POINTS = {"gearlib.cli", "gearlib.book", "gearlib.train.cli"}
LAZY_PACKAGES = ("gearlib.commands.", "gearlib.bench")  # subcommand modules the CLI imports for --help


def lazy_allowed(name: str) -> bool:
    return name in LAZY_ENTRY_POINTS or name.startswith(LAZY_PACKAGES)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(node: ast.AST, known: Set[str]) -> List[str]:
    """The gearlib modules an import statement loads (a name imported from a package may be a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
        subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
        # `from pkg import submodule` loads the submodule (a package's own __init__ always runs first)
        return subs if len(subs) == len(node.names) else [node.module] + subs
    return []


def graph(function_level: bool = True) -> Dict[str, Set[str]]:
    known = modules()
    edges: Dict[str, Set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if function_level else tree.body
        for node in nodes:
            edges[name].update(m for m in imported(node, set(known)) if m != name)
    return edges


def find_cycle(edges: Dict[str, Set[str]]) -> List[str]:
    colour: Dict[str, int] = {}
    stack: List[str] = []

    def visit(node: str) -> List[str]:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in colour:
                found = visit(nxt)
                if found:
                    return found
        colour[node] = 2
        stack.pop()
        return []

    for start in sorted(edges):
        if start not in colour:
            found = visit(start)
            if found:
                return found
    return []


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_gearlib_imports_are_at_module_level():
    known = modules()
    late = []
    for name, path in known.items():
        if lazy_allowed(name):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if imported(inner, set(known)):
                        late.append(f"{name}:{inner.lineno}")
    assert not late, late


def test_grow_does_not_import_train():
    edges = graph()
    assert not [(m, t) for m, ts in edges.items() if m.startswith("gearlib.grow") for t in ts if "train" in t]
