"""Nothing imports a script or the tests: the scripts are thin ends (argument parsing, one
client call, printing), and the logic they, the inbox, the demo and the benchmarks share
lives in modules (``client/``, ``worker_setup.py``...). A module that reached into a script
would pull its argument parsing in and grow a second copy of the rules around it.

Which modules count is computed: every ``.py`` file of the project outside ``tests/``, and
what they import is read from their AST, wherever in the module the import is. A script is
a top-level module that runs as one (``if __name__ == "__main__":``).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import PROJECT_ROOT

SKIPPED = {"tests", ".venv", "node_modules"}


def project_modules() -> Iterator[Path]:
    for path in sorted(PROJECT_ROOT.rglob("*.py")):
        parts = path.relative_to(PROJECT_ROOT).parts
        if not SKIPPED.intersection(parts) and not any(p.startswith(".") for p in parts):
            yield path


def is_script(path: Path) -> bool:
    return path.parent == PROJECT_ROOT and '__name__ == "__main__"' in path.read_text()


def imported(path: Path) -> Iterator[str]:
    """The modules ``path`` imports, as dotted names (absolute imports only: the project
    uses no relative ones)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            yield node.module


def test_no_module_imports_a_script_or_the_tests() -> None:
    scripts = {path.stem for path in project_modules() if is_script(path)}
    assert {"send_approval", "start_workflow", "approval_status", "worker", "demo"} <= scripts
    offences = [
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in project_modules()
        for name in imported(path)
        if name.split(".")[0] == "tests" or (name in scripts and path.stem != name)
    ]
    assert offences == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    """A late import (inside a function) counts as much as one at the top."""
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from send_approval import main\n    import tests.helpers\n")
    assert list(imported(module)) == ["send_approval", "tests.helpers"]


def package_of(path: Path) -> str | None:
    parts = path.relative_to(PROJECT_ROOT).parts
    return parts[0] if len(parts) > 1 else None


def test_no_two_packages_import_each_other() -> None:
    """Rooms that say what they hold: a package that imports another is built on it, so
    the other never imports it back (``models`` holds the types ``tools`` and ``policy``
    use; ``policy`` holds the rules ``workflows`` and ``activities`` both read)."""
    packages = {package_of(path) for path in project_modules()} - {None}
    uses = {
        (package_of(path), name.split(".")[0])
        for path in project_modules()
        for name in imported(path)
        if package_of(path) in packages and name.split(".")[0] in packages
    }
    cycles = sorted(f"{a} <-> {b}" for a, b in uses if a < b and (b, a) in uses)
    assert cycles == []
