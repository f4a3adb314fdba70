"""The code's shape, as evidence anyone can rerun (issue 12): the largest modules, the functions over ~60
lines, and the import cycles of ``tbal/``, ``app/`` and ``worker/``.

Read from the source with :mod:`ast` (nothing is imported, so nothing runs). An import cycle is a strongly
connected component (Tarjan) of the graph "module A imports module B" with more than one module, over

- **module-level** imports: what runs when a module is first imported (``if TYPE_CHECKING:`` blocks left
  out: they never run); a cycle here is fragile (import order decides whether a name exists yet);
- **all** imports, those inside functions included: the dependency a deferred import only hides.

``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``.
A package's ``__init__`` is its own node; importing ``pkg.sub`` is not counted as importing ``pkg``.

Usage, from the repository root::

    .venv/bin/python bench/structure.py            # the three folders, 15 largest modules
    .venv/bin/python bench/structure.py --top 30 --long 60 tbal
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tbal", "app", "worker", "client/tbal_client")
"""Package folders under the repository root; a module's dotted name is taken from its package folder's
parent (so client/tbal_client/cli.py is ``tbal_client.cli``, as it is imported)."""


@dataclass
class Module:
    """One source file: its dotted name, lines, functions' lengths and imported internal modules."""

    name: str
    path: Path
    lines: int
    functions: list[tuple[str, int, int]] = field(default_factory=list)  # (qualified name, line, length)
    top_imports: set[str] = field(default_factory=set)
    all_imports: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(packages: Iterable[str] = PACKAGES, root: Path = ROOT) -> dict[str, Module]:
    """Every module of ``packages`` under ``root``, with its imports resolved to modules of the set."""
    paths = [(p, (root / pkg).parent) for pkg in packages for p in sorted((root / pkg).rglob("*.py"))]
    names = {module_name(p, base) for p, base in paths}
    modules = {}
    for path, base in paths:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        module = Module(module_name(path, base), path, len(source.splitlines()))
        module.functions = list(_functions(tree))
        is_package = path.name == "__init__.py"
        for node, top in _imports(tree):
            for target in _targets(node, module.name, is_package, names):
                if target != module.name:
                    module.all_imports.add(target)
                    if top:
                        module.top_imports.add(target)
        modules[module.name] = module
    return modules


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            yield f"{prefix}{node.name}", node.lineno, length
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements with whether they run at import time (outside functions and TYPE_CHECKING)."""

    def walk(node: ast.AST, top: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, top
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), top)
            else:
                yield from walk(child, top)

    yield from walk(tree, True)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, names: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {_known(alias.name, names) for alias in node.names} - {""}
    base = node.module or ""
    if node.level:  # relative: from the current package, up level − 1
        package = here.split(".") if is_package else here.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in node.names:
        full = f"{base}.{alias.name}"
        found.add(full if full in names else _known(base, names))
    return found - {""}


def _known(dotted: str, names: set[str]) -> str:
    """The longest prefix of ``dotted`` that is one of our modules ('' when none: a third-party import)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return ""


def cycles(modules: dict[str, Module], *, top_level: bool) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    graph = {name: sorted(m.top_imports if top_level else m.all_imports) for name, m in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for name in sorted(graph):
            if name not in index:
                visit(name)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found, key=lambda c: (-len(c), c))


def a_cycle(component: list[str], modules: dict[str, Module], *, top_level: bool) -> list[str]:
    """One concrete cycle through the component's first module (breadth-first, shortest), for reading."""
    members = set(component)
    start = component[0]
    edges = {
        n: sorted((modules[n].top_imports if top_level else modules[n].all_imports) & members)
        for n in members
    }
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in edges[v]:
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    return component


def report(modules: dict[str, Module], *, top: int, long: int) -> str:
    lines = [f"# Structure of {', '.join(sorted({n.split('.')[0] for n in modules}))}"]
    total = sum(m.lines for m in modules.values())
    lines.append(f"{len(modules)} modules, {total} lines")
    lines.append(f"\n## Largest modules (top {top})")
    for m in sorted(modules.values(), key=lambda m: -m.lines)[:top]:
        lines.append(f"{m.lines:6d}  {m.path.relative_to(ROOT)}")
    over = sorted(
        (
            (length, m.path.relative_to(ROOT), name, line)
            for m in modules.values()
            for name, line, length in m.functions
        ),
        key=lambda f: -f[0],
    )
    over = [f for f in over if f[0] > long]
    lines.append(f"\n## Functions over {long} lines ({len(over)})")
    lines.extend(f"{length:6d}  {path}:{line}  {name}" for length, path, name, line in over)
    for top_level, title in ((True, "module-level imports"), (False, "all imports, deferred ones included")):
        found = cycles(modules, top_level=top_level)
        lines.append(f"\n## Import cycles, {title} ({len(found)})")
        for component in found:
            cycle = a_cycle(component, modules, top_level=top_level)
            lines.append(f"{len(component):3d} modules: {' -> '.join(cycle)}")
            if len(component) > len(set(cycle)):
                lines.append(f"      all: {', '.join(component)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", default=list(PACKAGES))
    parser.add_argument("--top", type=int, default=15, help="how many of the largest modules (15)")
    parser.add_argument("--long", type=int, default=60, help="list functions longer than this (60 lines)")
    args = parser.parse_args(argv)
    print(report(scan(args.packages), top=args.top, long=args.long))
    return 0


if __name__ == "__main__":
    sys.exit(main())
