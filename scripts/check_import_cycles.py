"""Find import cycles among goodjob_mp's modules.

By default follows module-level imports only; a cycle there exits 1. Imports under
``if TYPE_CHECKING:`` never run and are not followed. A package's own ``__init__`` is not
counted as imported by its submodules (Python has always started it first).

With ``--lazy`` it also follows imports inside functions and prints every cycle that a lazy
import closes, marking the lazy edges (``~>``): each such lazy import must be one that cannot be
moved to the top of its module without creating a module-level cycle.

    python3 scripts/check_import_cycles.py [--lazy] [package-dir]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _lazy_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside functions (run when the function is first called)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append(node)
    return found


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph(package_dir: Path, *, lazy: bool = False) -> dict[str, set[str]]:
    """module -> the modules it imports at module level (``lazy``: inside functions only)."""
    modules = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    collect = _lazy_imports if lazy else _top_level_imports
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in collect(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle's strongly connected component, as a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return components


def lazy_cycles(package_dir: Path) -> list[str]:
    """The cycles that appear once lazy imports are followed too, each as a closed path
    ``a -> b ~> c -> a`` (``~>``: a lazy import)."""
    eager = import_graph(package_dir)
    lazy = import_graph(package_dir, lazy=True)
    both = {m: eager[m] | lazy[m] for m in eager}
    paths = []
    for component in find_cycles(both):
        members = set(component)
        start = component[0]
        # Shortest closed walk from start through the component (breadth first).
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt_frontier = []
            for node in frontier:
                for nxt in sorted(both[node] & members):
                    if nxt not in previous:
                        previous[nxt] = node
                        nxt_frontier.append(nxt)
            frontier = nxt_frontier
        walk = [start]
        node = previous[start]
        while node != start:
            walk.append(node)
            node = previous[node]
        walk.append(start)
        walk.reverse()
        text = walk[0]
        for a, b in zip(walk, walk[1:], strict=False):
            text += (" -> " if b in eager[a] else " ~> ") + b
        paths.append(f"{text}  (cycle members: {', '.join(component)})")
    return paths


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if a != "--lazy"]
    package_dir = Path(args[0]) if args else ROOT / "goodjob_mp"
    cycles = find_cycles(import_graph(package_dir))
    for cycle in cycles:
        print("module-level import cycle: " + " <-> ".join(cycle))
    if not cycles:
        print(f"no module-level import cycles in {package_dir.name}")
    if "--lazy" in argv:
        for path in lazy_cycles(package_dir):
            print("closed by a lazy import: " + path)
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
