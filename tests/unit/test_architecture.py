"""The house keeps its shape: imports among `conformance/` modules run one way, down the layers, without loops;
functions stay short; grading's rooms stay small; no branch reads the engine's wording (docs/architecture.md).

Imports are read from the source with `ast`, including the ones inside functions (a lazy import is still a
dependency). Imports under `if TYPE_CHECKING:` are left out: they name a type and never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "conformance"

# Lowest first. A module may import modules of its own layer or of a lower one, never of a higher one.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"conformance", "model", "problems", "escapes", "yamlload", "transcript", "mailbox", "templates",
                    "builtin", "results_format", "quotes"}),
    ("scenario files", {"loader", "baseline"}),
    ("engine", {"reply", "connection", "dialogue"}),
    ("targets", {"targets"}),
    ("run", {"runner", "results", "merge", "failure", "progress"}),
    ("catalog and reports", {"catalog", "report"}),
    ("pytest plugin", {"plugin", "protocol"}),
    ("grading", {"grading"}),
    ("command line", {"cli"}),
]
MAX_FUNCTION_LINES = 80
MAX_GRADING_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            out.extend(n for c in child.orelse for n in _import_nodes(c))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            out.append(child)
        out.extend(_import_nodes(child))
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The `conformance` modules `name` imports (resolved to modules that exist)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(candidate: str) -> str:
        while candidate not in modules:  # `from .. import __version__`: a name, not a module
            candidate = candidate.rpartition(".")[0]
        return candidate

    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(resolve(a.name) for a in node.names if a.name.split(".")[0] == "conformance")
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        elif node.module and node.module.split(".")[0] == "conformance":
            module = node.module
        else:
            continue
        found.add(resolve(module))
        found.update(resolve(f"{module}.{a.name}") for a in node.names if f"{module}.{a.name}" in modules)
    found.discard(name)
    return found


def layer_of(name: str) -> int:
    short = name.removeprefix("conformance.") if name != "conformance" else "conformance"
    room = short.split(".")[0]
    for index, (_, members) in enumerate(LAYERS):
        if room in members:
            return index
    raise AssertionError(f"{name}: in no layer of tests/unit/test_architecture.py LAYERS; give it one")


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_imports_inside_functions():
    edges = graph()
    assert "conformance.grading" in edges["conformance.cli"]  # imported inside cmd_grade
    assert "conformance.loader" in edges["conformance.grading"]
    assert "conformance.targets.base" not in edges["conformance.dialogue"]  # only under TYPE_CHECKING


def test_no_import_cycle():
    # a package's __init__ re-exporting its own modules is not a loop between rooms
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_runs_back_up_the_layers():
    upward = []
    for name, deps in graph().items():
        for dep in sorted(deps):
            if layer_of(dep) > layer_of(name):
                upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})")
    assert upward == []


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_longer_than_80_lines():
    long = []
    for name, path in all_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_grading_modules_are_small():
    big = [f"{p.name}: {n}" for p in sorted((PACKAGE / "grading").glob("*.py"))
           if (n := len(p.read_text(encoding="utf-8").splitlines())) >= MAX_GRADING_MODULE_LINES]
    assert big == []
    assert not (PACKAGE / "grading.py").exists()


# A branch on the engine's wording: `message.startswith("Expected")`, `"connection refused" in message` …
WORDING = re.compile(r"""(message|actual|msg|text|note|reason)["'\]\)]*\.(startswith|endswith)\("""
                     r"""|["'][^"']+["']\s+(not\s+)?in\s+[\w.]*(message|actual|msg|text)\b""")


def test_the_wording_check_catches_what_it_should():
    for line in ('if str(s["message"]).startswith(NOT_RUN):', 'if "no usable greeting" in message:',
                 'if actual.startswith("connection closed by the server"):',
                 'return message.startswith("x") or "/ Actual: no complete reply" in result.message'):
        assert WORDING.search(line), line
    assert not WORDING.search('if line.startswith("State:"):')


def test_no_branch_on_message_text_in_grading_or_reports():
    hits = []
    for path in [*sorted((PACKAGE / "grading").glob("*.py")), *sorted((PACKAGE / "report").glob("*.py")),
                 PACKAGE / "failure.py"]:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WORDING.search(line):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert hits == []
