"""The package's layers: lower layers never import higher ones, and no module imports form a cycle.

The layer table is read from docs/architecture.md (one source of truth for people and this test).
Imports are read from the source with ``ast``: every ``import`` and ``from ... import`` anywhere in
a module (inside functions too: lazy imports count), plus the names a package loads on demand
through ``importlib.import_module`` from its ``_EXPORTS`` / ``_COMMAND_MODULES`` tables.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "astroflow_gal"
DOC = ROOT / "docs" / "architecture.md"
_LAZY_TABLES = ("_EXPORTS", "_COMMAND_MODULES")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def layer_table() -> list[tuple[int, list[str]]]:
    """(layer number, module prefixes) rows of the table in docs/architecture.md."""
    rows = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|(.*)\|", line)
        if m:
            names = re.findall(r"`(astroflow_gal[\w.]*)`", m.group(2).split("|")[0])
            rows.append((int(m.group(1)), names))
    return rows


LAYERS = layer_table()


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for number, prefixes in LAYERS:
        for prefix in prefixes:
            # the package itself holds only its __init__; its modules are listed one by one
            inside = module.startswith(prefix + ".") and prefix != "astroflow_gal"
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = number, len(prefix)
    if best is None:
        raise AssertionError(
            f"{module} is in no layer of docs/architecture.md: add it to the layer table"
        )
    return best


def _package_of(module: str) -> str:
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rsplit(".", 1)[0]


def _resolve(module: str, base: str | None, level: int, names: list[str]) -> set[str]:
    """Package modules named by ``from <level dots><base> import <names>`` in ``module``."""
    if level:
        parts = _package_of(module).split(".")
        parts = parts[: len(parts) - (level - 1)]
        target = ".".join(parts + ([base] if base else []))
    else:
        target = base or ""
    if not target.startswith("astroflow_gal"):
        return set()
    found = set()
    for name in names:
        sub = f"{target}.{name}"
        found.add(sub if sub in MODULES else target)
    return found


def imports_of(module: str) -> set[str]:
    """Every package module ``module`` imports, at module level or lazily."""
    tree = ast.parse(MODULES[module].read_text())
    deps: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("astroflow_gal")}
        elif isinstance(node, ast.ImportFrom):
            deps |= _resolve(module, node.module, node.level, [a.name for a in node.names])
    for node in tree.body:  # tables of modules loaded on demand with importlib
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if not any(isinstance(t, ast.Name) and t.id in _LAZY_TABLES for t in targets):
                continue
            value = node.value
            items = value.values if isinstance(value, ast.Dict) else getattr(value, "elts", [])
            for item in items:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    name = item.value
                    if not name.startswith("astroflow_gal"):
                        name = f"{_package_of(module)}.{name}"
                    if name in MODULES:
                        deps.add(name)
                    else:
                        MISSING.append(f"{module}: {item.value!r}")
    deps.discard(module)
    unknown = {d for d in deps if d not in MODULES and d != "astroflow_gal"}
    # `import astroflow_gal.x.y` of a name that is not a file: keep the longest module prefix
    for d in unknown:
        deps.discard(d)
        parts = d.split(".")
        while parts and ".".join(parts) not in MODULES:
            parts.pop()
        if parts:
            deps.add(".".join(parts))
    deps.discard(module)
    return deps


MISSING: list[str] = []
GRAPH = {m: imports_of(m) for m in MODULES}


def test_lazy_tables_name_existing_modules():
    assert not MISSING, f"lazy export tables name modules that do not exist: {MISSING}"


def test_layer_table_is_in_the_docs():
    numbers = [n for n, _ in LAYERS]
    assert numbers == sorted(numbers) and len(numbers) >= 6, LAYERS
    assert all(prefixes for _, prefixes in LAYERS)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_imports(module):
    # (__main__ runs the command line when imported; its imports are checked below)
    importlib.import_module(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_lower_layers_never_import_higher_ones(module):
    mine = layer_of(module)
    above = sorted(d for d in GRAPH[module] if layer_of(d) > mine)
    assert not above, f"{module} (layer {mine}) imports higher layers: {above}"


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph (lazy imports included);
    # a package importing its own submodules is an edge like any other.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_lazy_imports_and_cycles():
    # the checker itself: a function-level import and an _EXPORTS table are edges
    assert "astroflow_gal.model" in GRAPH["astroflow_gal"]
    assert "astroflow_gal.frames" in GRAPH["astroflow_gal.model"]  # imported inside a method
    assert "astroflow_gal.data.synthetic" in GRAPH["astroflow_gal.data.suite"]
    assert "astroflow_gal.data.suite" not in GRAPH["astroflow_gal.data.synthetic"]
    assert layer_of("astroflow_gal.flow.spline") < layer_of("astroflow_gal.data.suite")
    assert layer_of("astroflow_gal.data.suite") < layer_of("astroflow_gal.model")
