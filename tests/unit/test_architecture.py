"""The package's shape: imports point one way (no cycles), lower layers never import
the command line, the API or the results views."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "launcher"
# Modules that only the top of the house may import.
UPPER = {"launcher.cli", "launcher.api"}
VIEWS = {"launcher.results", "launcher.listing", "launcher.verify", "launcher.compare",
         "launcher.report", "launcher.plots", "launcher.timeline", "launcher.scale",
         "launcher.views"}
ENGINE_SIDE = ("launcher.backends", "launcher.container", "launcher.hosts",
               "launcher.shipping", "launcher.image", "launcher.engine", "launcher.store",
               "launcher.runner", "launcher.plan", "launcher.spec")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every launcher module that ``path`` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` depends on the submodule, not on the package's __init__
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [s for s in subs if s in known] or [node.module]
        out.update(n for n in names if n in known)
    return out


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_lower_layers_never_import_the_command_line_the_api_or_the_views() -> None:
    graph = import_graph()
    upward = sorted(f"{mod} -> {dep}" for mod, deps in graph.items()
                    if mod.startswith(ENGINE_SIDE) for dep in deps
                    if dep.startswith(tuple(UPPER)) or dep in VIEWS)
    assert upward == []


def test_backends_do_not_import_cleanup_or_the_run_loop() -> None:
    graph = import_graph()
    bad = sorted(f"{mod} -> {dep}" for mod, deps in graph.items()
                 if mod.startswith("launcher.backends") for dep in deps
                 if dep in {"launcher.cleanup", "launcher.runner", "launcher.api"})
    assert bad == []


def test_the_public_api_is_typed_and_complete() -> None:
    import launcher

    assert (PACKAGE / "py.typed").is_file()
    for name in launcher.__all__:
        assert getattr(launcher, name) is not None, name
    assert set(launcher.__all__) <= set(dir(launcher))
    lazy = set(launcher._LAZY)
    assert lazy | {"LauncherError"} == set(launcher.__all__)
    source = (PACKAGE / "__init__.py").read_text()
    for name in lazy:  # each lazy export is also imported for type checkers
        assert f" {name}" in source.split("if TYPE_CHECKING:")[1].split("__all__")[0], name
