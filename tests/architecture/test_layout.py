"""The shape the layout promises (DESIGN.md "Layout"), checked on the source with `ast`.

- Imports point one way: models <- worker <- scheduler. models imports neither, worker never imports
  scheduler, and no package imports a module that (directly or not) imports it back.
- No module over 400 lines; no function over 60 lines (migrations and benchmarks aside).
- No block of six or more identical lines repeated in the send path.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "worker", "scheduler", "sandbox")
#: Who may import whom (top-level packages); anything not listed is forbidden.
ALLOWED = {
    "models": {"models"},
    "worker": {"models", "worker"},
    "scheduler": {"models", "worker", "scheduler"},
    "sandbox": {"models", "sandbox"},
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
REPEAT_BLOCK = 6


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every project module `path` imports, at module level or inside functions (TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    targets: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            targets.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)

    Visitor().visit(tree)
    return {t for t in targets if t.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target in imports_of(path, name):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_imports_point_one_way() -> None:
    wrong = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[source.split(".")[0]]
        # The CLI serves the simulator (`smsq sandbox`, `smsq demo`): only it may import sandbox/.
        and not (source.startswith("worker.cli.") and target.startswith("sandbox"))
    ]
    assert wrong == []


def test_no_import_cycle_anywhere() -> None:
    edges = graph()
    # A package's __init__ re-exporting its own modules is not a cycle of concepts: only count edges
    # between modules that are not a package and its own submodule.
    def own(source: str, target: str) -> bool:
        return source.startswith(target + ".") or target.startswith(source + ".")

    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if own(node, target):
                continue
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target] if target in stack else [node, target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(modules()):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checker_sees_a_forbidden_import_and_a_cycle(tmp_path: Path) -> None:
    # The checks above would pass vacuously if the parser missed imports: show that it finds them.
    source = tmp_path / "m.py"
    source.write_text("from scheduler.sweeps import release\nimport worker.app\n\ndef f():\n    from models import db\n")
    assert imports_of(source, "worker.x") == {"scheduler.sweeps", "scheduler.sweeps.release", "worker.app", "models", "models.db"}


def test_no_module_or_function_is_too_long() -> None:
    long_modules, long_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert long_modules == [] and long_functions == []


def test_no_block_of_six_lines_is_repeated_in_the_send_path() -> None:
    seen: dict[tuple[str, ...], str] = {}
    repeats: list[str] = []
    for path in sorted((ROOT / "worker" / "submit").glob("*.py")):
        text = path.read_text()
        skip: set[int] = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        lines = [line.strip() for line in text.splitlines()]
        meaningful = [
            (i, line) for i, line in enumerate(lines, 1) if line and not line.startswith("#") and i not in skip
        ]
        for start in range(len(meaningful) - REPEAT_BLOCK + 1):
            block = tuple(line for _, line in meaningful[start : start + REPEAT_BLOCK])
            where = f"{path.name}:{meaningful[start][0]}"
            if block in seen and not seen[block].startswith(path.name + ":"):
                repeats.append(f"{where} repeats {seen[block]}")
            elif block in seen and seen[block] != where:
                repeats.append(f"{where} repeats {seen[block]}")
            seen.setdefault(block, where)
    assert repeats == []


def test_an_application_with_its_own_models_package_gets_one_clear_import_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("APP = True\n")
    result = subprocess.run(
        [sys.executable, "-c", "import worker"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: smsq's 'worker' needs smsq's own top-level 'models' package")
    assert str(tmp_path / "models") in last and "Rename that package" in last
