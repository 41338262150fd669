"""The package layout holds: imports point down the layers, packages meet only through `__all__`,
no module imports itself in a circle, and a long module says why it is long.

Parsed with `ast`, nothing imported, so it also covers imports under `TYPE_CHECKING` and inside
functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Higher imports lower. Packages on one layer do not import one another, except the sideways
# edges below, each with its reason.
LAYER = {
    "worker": 4,
    "workflows": 3,
    "backtest": 3,
    "forecasting": 2,
    "optimization": 2,
    "market_adapters": 2,
    "fleet": 2,
    "exchange": 2,
    "autobidder.strategy": 1.5,
    "autobidder": 1,
}
SIDEWAYS = {
    # The exchange is the counterparty of our adapters: it shares their rules, codecs and clearing.
    ("exchange", "market_adapters"),
    # Forecasts are clipped to the market's price floor and cap, which are market rules.
    ("forecasting", "market_adapters"),
}
LONG_MODULE_LINES = 500
LONG_MODULE_REASON = "Long because"


def package_of(module: str) -> str | None:
    if module == "autobidder.strategy" or module.startswith("autobidder.strategy."):
        return "autobidder.strategy"
    top = module.split(".")[0]
    return top if top in LAYER else None


def source_modules() -> Iterator[tuple[str, Path]]:
    for package in LAYER:
        if "." in package:
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


MODULES = dict(source_modules())


def imports_of(path: Path) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(module, imported names or () for `import module`, line) of each absolute import."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(a.name for a in node.names), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno


def exports_of(package: str) -> dict[str, str]:
    """Public name -> defining module, read from the package's `_EXPORTS` and `__all__`."""
    init = MODULES[package]
    tree = ast.parse(init.read_text(encoding="utf-8"))
    public: set[str] = set()
    by_module: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "__all__":
                public = set(ast.literal_eval(node.value))
            elif node.targets[0].id == "_EXPORTS":
                for module, names in ast.literal_eval(node.value).items():
                    by_module.update({name: module for name in names})
    return {name: by_module.get(name, package) for name in public}


EXPORTS = {package: exports_of(package) for package in LAYER}


def test_every_package_states_what_it_is_and_its_public_names() -> None:
    for package in LAYER:
        docstring = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
        assert docstring and "May import" in docstring, f"{package}/__init__.py: say what it may import"
        for name, module in EXPORTS[package].items():
            assert module in MODULES, f"{package}.__all__ lists {name} from missing module {module}"
            # Importing the submodule `package.name` would rebind the package attribute `name`
            # to the module, so `from package import name` would then return the wrong object.
            assert f"{package}.{name}" not in MODULES, f"{package}.__all__: {name} is also a submodule"


def type_checking_imports(package: str) -> dict[str, str]:
    """Name -> module of the `if TYPE_CHECKING:` imports in the package's `__init__`."""
    tree = ast.parse(MODULES[package].read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for child in node.body:
                if isinstance(child, ast.ImportFrom) and child.module:
                    names.update({a.asname or a.name: child.module for a in child.names})
    return names


def test_the_types_mypy_sees_are_the_names_loaded_at_run_time() -> None:
    """`_EXPORTS` (what `__getattr__` loads) and the `TYPE_CHECKING` imports (what mypy sees) are
    two lists of one thing: they must name the same objects from the same modules."""
    for package in LAYER:
        loaded = {name: module for name, module in EXPORTS[package].items() if module != package}
        assert type_checking_imports(package) == loaded, package


def test_imports_point_down_the_layers_and_through_public_names() -> None:
    wrong = []
    for module, path in MODULES.items():
        source = package_of(module)
        assert source is not None
        for target, names, line in imports_of(path):
            target_package = package_of(target)
            if target_package is None or target_package == source:
                continue
            where = f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
            downward = LAYER[source] > LAYER[target_package] or (source, target_package) in SIDEWAYS
            if not downward:
                wrong.append(f"{where} (upward or sideways: {source} -> {target_package})")
            if target != target_package:
                wrong.append(f"{where} (import from the package {target_package}, not its modules)")
            private = [n for n in names if n not in EXPORTS[target_package]]
            if private:
                wrong.append(f"{where} ({', '.join(private)} not in {target_package}.__all__)")
    assert not wrong, "\n".join(wrong)


def module_graph() -> dict[str, set[str]]:
    """Module -> modules it imports, a package's public name resolved to its defining module."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        for target, names, _ in imports_of(path):
            if package_of(target) is None:
                continue
            exports = EXPORTS.get(target, {})
            for name in names or ("",):
                submodule = f"{target}.{name}"
                resolved = exports.get(name) or (submodule if submodule in MODULES else target)
                if resolved != module and resolved in MODULES and not resolved.endswith("__init__"):
                    graph[module].add(resolved)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one module are import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_imports_itself_in_a_circle() -> None:
    assert strongly_connected(module_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why(module: str) -> None:
    path = MODULES[module]
    lines = path.read_text(encoding="utf-8").count("\n")
    if lines > LONG_MODULE_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert LONG_MODULE_REASON in docstring, f"{path.relative_to(ROOT)}: {lines} lines and no reason"
