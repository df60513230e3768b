"""The shape of the house: one-way imports, small modules (see README "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "loopsafe"
#: A module longer than this holds more than one idea: split it.
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every loopsafe module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name in known:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(path, known) - {name} for name, path in modules.items()}
    # A package's __init__ re-exports its modules; importing a submodule runs
    # the package first, which is no edge back from the package's point of view.
    return {
        name: {dep for dep in deps if not name.startswith(dep + ".")}
        for name, deps in graph.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_even_through_lazy_imports():
    """No loopsafe module imports, directly or through others, one that imports it back."""
    assert _cycle(_graph()) is None


def test_the_core_imports_no_integration():
    """The engine, the hashers and the facade never import an integration or the CLI."""
    integrations = (
        "loopsafe.django",
        "loopsafe.starlette",
        "loopsafe.litestar",
        "loopsafe.aiohttp",
        "loopsafe.advanced_alchemy",
        "loopsafe.prometheus",
        "loopsafe.cli",
    )
    core = [
        name
        for name in _graph()
        if name.startswith(("loopsafe._", "loopsafe.hashers", "loopsafe.exceptions"))
        or name in {"loopsafe", "loopsafe.profiles"}
    ]
    core.remove("loopsafe.__main__")  # `python -m loopsafe` is the command line
    graph = _graph()
    for name in core:
        assert not {dep for dep in graph[name] if dep.startswith(integrations)}, name


def test_the_hashers_know_no_event_loop():
    """Hashers are pure: they import nothing from the engine (pool, waiting, defaults)."""
    graph = _graph()
    for name in graph:
        if name.startswith("loopsafe.hashers"):
            engine = {"loopsafe._pool", "loopsafe._waiting", "loopsafe._default", "loopsafe._api"}
            assert not graph[name] & engine, name


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_small(name):
    """Each module holds one idea: none is longer than MAX_LINES lines."""
    lines = _modules()[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def test_the_cycle_finder_finds_cycles():
    """The checker itself: a two-module circle is reported."""
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
