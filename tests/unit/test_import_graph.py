"""The import graph of src/prodmatch: no circles, utils/ a leaf, function-level imports only where their cost is the
reason (said in a comment), no logic module over about 400 lines.

Every ``import`` counts, at module level and inside functions (a circle closed by a function-level import is
still a circle); ``if TYPE_CHECKING:`` blocks do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "prodmatch"
MAX_LINES = 420  # "about 400"
DATA_MODULES = {"prodmatch.data.synthetic.tables"}  # the generator's world as tables: data, not logic


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The prodmatch module an import name refers to (a module, or the package whose attribute it is)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines |= set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str) -> list[tuple[str, int, bool]]:
    """(imported prodmatch module, line, inside a function) of every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    skipped = _type_checking_lines(tree)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {
                sub.lineno for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))
            }
    found = []
    for node in ast.walk(tree):
        if node.lineno in skipped if hasattr(node, "lineno") else False:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        for target in targets:
            resolved = _resolve(target) if target.startswith("prodmatch") else None
            if resolved is not None and resolved != name:
                found.append((resolved, node.lineno, node.lineno in in_function))
    return found


GRAPH = {name: {target for target, _, _ in imports(name)} for name in MODULES}


def test_no_import_circles():
    """Tarjan's strongly connected components: every component must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert circles == []


def test_utils_imports_nothing_of_prodmatch_but_errors():
    for name in MODULES:
        if name.startswith("prodmatch.utils"):
            outside = {
                t for t in GRAPH[name] if not t.startswith("prodmatch.utils") and t != "prodmatch.errors"
            }
            assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_function_level_imports_say_why(name: str):
    """A prodmatch import inside a function is there for its cost (torch, Lightning, ...): a comment on its line
    or the line above says so."""
    lines = MODULES[name].read_text(encoding="utf-8").splitlines()
    for _, line, in_function in imports(name):
        if in_function:
            said = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
            assert said, (
                f"{MODULES[name].relative_to(SRC)}:{line}: a function-level import without its reason"
            )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_logic_module_is_over_about_400_lines(name: str):
    if name in DATA_MODULES:
        return
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines; split it by concern"
