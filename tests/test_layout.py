"""The project's layout rules, read from the source with ``ast`` (nothing is imported).

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.
``from package import name`` counts as importing the package's ``__init__`` (and the
submodule ``package.name`` when there is one), so a package ``__init__`` that re-exports
its submodules is part of any cycle through it. The rules:

* no import cycle among the modules of flows/, tasks/, models/ and expectations/;
* models/ and expectations/ import nothing from tasks/ or flows/; tasks/ nothing from flows/;
* a module in a part folder of tasks/ (any subpackage: tasks/data/, tasks/storage/, ...)
  imports no stage module (a module directly in tasks/ other than errors.py and config.py);
* at most ``MAX_TASKS_MODULES`` modules directly in tasks/;
* no module over ``MAX_LINES`` lines;
* models/ imports neither Prefect nor MLflow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "models", "expectations")
MAX_TASKS_MODULES = 15
MAX_LINES = 500
NOT_STAGES = {"__init__.py", "errors.py", "config.py"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _sources()


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """What ``module`` imports: the modules named by its import statements (``import a.b``:
    ``a.b``; ``from a import b``: ``a``), and every dotted name it may reach (those, plus
    ``a.b`` for ``from a import b``, which may be a submodule). Relative imports are made
    absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    modules: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            modules.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return modules, modules | names


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def _resolve(name: str) -> str | None:
    """The project module a dotted name lands in (its longest prefix that is a module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, (_, names) in IMPORTS.items():
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                edges[module].add(target)
    return edges


EDGES = _edges()


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(MODULES):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def _cycle_through(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """One import path from the group's first module back to it, inside the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for child in sorted(edges.get(node, set()) & members):
            if child == start:
                path = [node]
                while (previous := came_from[path[-1]]) is not None:
                    path.append(previous)
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                todo.append(child)
    return group


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def test_no_import_cycles() -> None:
    cycles = [" -> ".join(_cycle_through(g, EDGES)) for g in _strongly_connected(EDGES)]
    assert not cycles, (
        "import cycles (rule: no module imports one that imports it back, package __init__ "
        "re-exports included; move the shared piece down into a module both import):\n"
        + "\n".join(cycles)
    )


def test_models_and_expectations_import_no_pipeline() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module, (names, _) in IMPORTS.items()
        if _top(module) in ("models", "expectations")
        for name in names
        if _top(name) in ("tasks", "flows")
    )
    assert not found, (
        "rule: models/ and expectations/ import nothing from tasks/ or flows/ (take plain "
        "values as arguments instead):\n" + "\n".join(found)
    )


def test_tasks_import_no_flows() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module, (names, _) in IMPORTS.items()
        if _top(module) == "tasks"
        for name in names
        if _top(name) == "flows"
    )
    assert not found, "rule: tasks/ imports nothing from flows/:\n" + "\n".join(found)


def _stages() -> set[str]:
    return {
        _module_name(path) for path in (ROOT / "tasks").glob("*.py") if path.name not in NOT_STAGES
    }


def test_parts_import_no_stage() -> None:
    stages = _stages()
    found = {
        (module, target)
        for module, path in MODULES.items()
        if path.is_relative_to(ROOT / "tasks")
        if len(path.relative_to(ROOT / "tasks").parts) > 1
        for target in EDGES.get(module, ())
        if target in stages
    }
    new = sorted(found)
    assert not new, (
        "rule: a part folder of tasks/ imports no stage module (tasks/<stage>.py); move what "
        "it needs into the part, or let the stage pass it in:\n"
        + "\n".join(f"{module} imports {stage}" for module, stage in new)
    )


def test_few_modules_directly_in_tasks() -> None:
    modules = sorted(p.name for p in (ROOT / "tasks").glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= MAX_TASKS_MODULES, (
        f"rule: at most {MAX_TASKS_MODULES} modules directly in tasks/ (a stage each; their "
        f"parts go into a folder of tasks/); found {len(modules)}: {modules}"
    )


def test_no_module_over_500_lines() -> None:
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    found = {name for name, n in lengths.items() if n > MAX_LINES}
    new = sorted(found)
    assert not new, (
        f"rule: no module over {MAX_LINES} lines; split it where it divides:\n"
        + "\n".join(f"{name}: {lengths[name]} lines" for name in new)
    )


def test_models_import_neither_prefect_nor_mlflow() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module, (names, _) in IMPORTS.items()
        if _top(module) == "models"
        for name in names
        if _top(name) in ("prefect", "mlflow")
    )
    assert not found, "rule: models/ imports neither Prefect nor MLflow:\n" + "\n".join(found)
