"""The library's structure: no import cycles, no imports of convlens inside functions, small modules,
a light config import, and no private names used across modules. Static checks of convlens/**/*.py
(parsed with ast, never imported), except the config import, which runs in a fresh interpreter."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "convlens"
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in SOURCES.items()}


def is_package(module: str) -> bool:
    return SOURCES[module].name == "__init__.py"


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


class Import:
    """One import of a convlens module: where it is, what it binds, whether it sits in a function."""

    def __init__(self, module, target, line, in_function, bound=None, name=None):
        self.module, self.target, self.line, self.in_function = module, target, line, in_function
        self.bound = bound  # the local name bound to the imported *module* (None if a plain name is bound)
        self.name = name  # for ``from X import name``: the imported name

    def where(self) -> str:
        return f"{SOURCES[self.module].relative_to(ROOT)}:{self.line}"


def imports(module: str) -> list[Import]:
    """Every import of a convlens module in ``module``, at any depth (module level, functions, classes)."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "convlens" or alias.name.startswith("convlens."):
                        # ``import a.b.c`` binds ``a``; ``import a.b.c as x`` binds x to a.b.c
                        found.append(Import(module, alias.name, child.lineno, in_function, bound=alias.asname))
            elif isinstance(child, ast.ImportFrom):
                source = resolve(module, child)
                if source != "convlens" and not source.startswith("convlens."):
                    continue
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    if sub in SOURCES:  # a submodule: the edge goes to it
                        found.append(
                            Import(
                                module,
                                sub,
                                child.lineno,
                                in_function,
                                bound=alias.asname or alias.name,
                                name=alias.name,
                            )
                        )
                    else:
                        found.append(Import(module, source, child.lineno, in_function, name=alias.name))
            visit(child, inside)

    visit(TREES[module], False)
    return found


IMPORTS = {name: imports(name) for name in SOURCES}


def graph() -> dict[str, set[str]]:
    """module -> the convlens modules it imports (function-level imports included). An import names
    the module it names: importing ``convlens.a.b`` is an edge to convlens.a.b, not to convlens.a."""
    return {
        name: {imp.target for imp in found if imp.target in SOURCES and imp.target != name}
        for name, found in IMPORTS.items()
    }


def components(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of the graph (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))
    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def shortest_cycle(component: set[str], edges: dict[str, set[str]]) -> list[str] | None:
    """A shortest cycle through the component's first node inside the component (BFS), None if none."""
    start = min(component)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        nxt = sorted(edges[path[-1]] & component)
        if start in nxt:
            return path + [start]
        for w in nxt:
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component that has one (Tarjan, then BFS)."""
    found = []
    for component in components(edges):
        if len(component) == 1 and not any(v in edges[v] for v in component):
            continue
        cycle = shortest_cycle(component, edges)
        if cycle:
            found.append(cycle)
    return found


def test_the_checker_finds_cycles_and_resolves_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert {"convlens.core.graph", "convlens.core.layers", "convlens.errors"} <= graph()["convlens.core.head"]
    node = ast.parse("from .graph import trace").body[0]
    assert resolve("convlens.core.head", node) == "convlens.core.graph"
    assert resolve("convlens.core", ast.parse("from . import head").body[0]) == "convlens.core"


def test_no_import_cycles():
    edges = graph()
    found = cycles(edges)

    def describe(cycle):
        steps = [" -> ".join(cycle)]
        for a, b in zip(cycle, cycle[1:], strict=False):
            lines = sorted({imp.where() for imp in IMPORTS[a] if imp.target == b})
            steps.append(f"  {a} -> {b}: {', '.join(lines)}")
        return "\n    ".join(steps)

    assert not found, "import cycles among convlens modules:\n  " + "\n  ".join(describe(c) for c in found)


def test_no_function_level_imports_of_convlens():
    inside = [
        f"{imp.where()}: {imp.target}" + (f" ({imp.name})" if imp.name else "")
        for found in IMPORTS.values()
        for imp in found
        if imp.in_function
    ]
    assert not inside, "convlens imported inside functions (import at module level):\n  " + "\n  ".join(inside)


def test_no_module_is_over_500_lines():
    lines = {name: len(path.read_text().splitlines()) for name, path in SOURCES.items()}
    long = [f"{SOURCES[n].relative_to(ROOT)}: {count} lines" for n, count in sorted(lines.items()) if count > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n  " + "\n  ".join(long)


def test_importing_the_config_does_not_import_tensorflow_or_keras():
    """What the Snakefile imports while it plans the DAG (the config, the shard sizes' cost estimate)."""
    code = (
        "import sys, convlens.config, convlens.model_cost; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", f"import convlens.config, convlens.model_cost imports {done.stdout.strip()}"


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_across_modules():
    found = []
    for module, tree in TREES.items():
        aliases = {}  # local name -> the convlens module it is bound to
        for imp in IMPORTS[module]:
            if imp.name is not None and private(imp.name):
                found.append(f"{imp.where()}: from {imp.target} import {imp.name}")
            if imp.bound and imp.target in SOURCES:
                aliases[imp.bound] = imp.target
            elif imp.name is None and imp.bound is None:  # ``import convlens.x.y`` binds ``convlens``
                aliases["convlens"] = "convlens"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and private(node.attr):
                chain, value = [node.attr], node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in aliases:
                    dotted = ".".join([value.id] + chain[::-1])
                    found.append(
                        f"{SOURCES[module].relative_to(ROOT)}:{node.lineno}: {dotted} "
                        f"({value.id} is {aliases[value.id]})"
                    )
    assert not found, "private names used across modules:\n  " + "\n  ".join(sorted(set(found)))


PACKAGES = sorted(name for name in SOURCES if is_package(name) and name != "convlens")


@pytest.mark.parametrize("package", PACKAGES)
def test_the_tests_mirror_the_package_tree(package):
    folder = ROOT / "tests" / package.split(".", 1)[1].replace(".", "/")
    assert (folder / "__init__.py").is_file() and list(folder.glob("test_*.py")), f"{package}: no tests in {folder}"
