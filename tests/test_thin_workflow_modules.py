"""Workflow code must be deterministic, and the sandbox does not check modules passed
through it, so this test forbids wall-clock time, randomness, I/O and threads in the
modules whose code runs in a workflow.

The sandbox re-imports a workflow's own module for each run and restricts what that code
calls; but everything imported under ``workflow.unsafe.imports_passed_through()`` (the
rules, the models, the audit trail...) is the worker's one real module, run unchecked. A
``random.random()`` or ``datetime.now()`` there would replay differently and break runs in
flight, with nothing to say so until it happens.

Which modules are workflow-side is computed, never listed: every module in ``workflows/``
(the workflow classes and what they compose), and every module of this project they import,
transitively (by an AST walk of each module's imports, wherever in the module they are).
Two kinds of module are reached but are not run by the workflow as a whole:

- activity modules (``activities/*``): a workflow imports them for the references it
  schedules (``AnalysisActivities.propose_action``, ``execute_tool_call``) and for types;
  the worker runs their code, outside any workflow, and their I/O is their job. The walk
  stops at them, and a check below holds the premise: workflow-side code never calls a name
  it imported from an activity module.
- the tool implementations behind ``tools/registry.py`` (every ``tools/*`` module but the
  registry and ``models/tools.py``): their previews and executions run in the tool activities
  (on SQLite, by design), but default-deny validates a proposed call's arguments in the
  workflow (``registry.validated_arguments``). So for them the guard covers exactly that
  code: each registered tool's argument models (their validators, their base and field
  models) and ``Tool.parse``, and every project function those call, transitively.

The scan forbids importing, or calling, ``time``, ``random``, ``secrets``, ``uuid.uuid1`` /
``uuid4``, ``datetime.now`` / ``utcnow`` / ``today``, ``os.urandom`` and ``os.environ``,
``open``/``print``/``input``, ``hash`` (salted per process for strings), sockets, HTTP
clients, threads, subprocesses, ``asyncio.to_thread`` and SQLite. ``workflow.now()``,
``workflow.uuid4()`` and ``workflow.random()`` are the deterministic ways.
"""

import ast
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from models.models import Outcome
from tools.base import Tool
from tools.registry import TOOLS
from workflows.search_attributes import FINAL_APPROVAL_STATUS

PROJECT = Path(__file__).resolve().parent.parent
ACTIVITIES = "activities"
TOOLS_PACKAGE = "tools"
TOOLS_RUN_WHOLE = {"tools.registry"}  # the rest: argument models only

FORBIDDEN_MODULES = {
    "time",
    "random",
    "secrets",
    "socket",
    "ssl",
    "select",
    "selectors",
    "threading",
    "_thread",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "signal",
    "sqlite3",
    "httpx",
    "httpx2",
    "requests",
    "aiohttp",
    "urllib",
    "http",
    "smtplib",
    "openai",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
}
# Names read from a module that are the clock, chance, the environment or I/O.
FORBIDDEN_ATTRIBUTES = {
    "datetime": {"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"},
    "date": {"today", "fromtimestamp"},
    "uuid": {"uuid1", "uuid4"},
    "os": {
        "urandom",
        "getrandom",
        "environ",
        "getenv",
        "getpid",
        "system",
        "popen",
        "open",
        "fdopen",
        "read",
        "write",
        "listdir",
        "scandir",
        "walk",
        "stat",
        "remove",
        "unlink",
        "mkdir",
        "makedirs",
        "times",
    },
    "asyncio": {
        "to_thread",
        "run_in_executor",
        "create_subprocess_exec",
        "create_subprocess_shell",
        "open_connection",
        "start_server",
        "get_event_loop",
    },
}
FORBIDDEN_BUILTINS = {"open", "print", "input", "hash", "breakpoint"}

# Functions of workflow-side modules that read outside state, for the worker and starters:
# no workflow-side module imports them (checked below), so no workflow runs them.
NOT_WORKFLOW_CODE = {
    "constants.task_queue": "the task queue workers and starters use (HITL_TASK_QUEUE)",
}
# Known code that runs in the workflow and breaks the rule, each with why it is tolerated.
# The check below fails when one is no longer found, so none outlives its reason.
TOLERATED = {
    "tools.sql_functions.time_or_randomness": (
        "run_sql's argument validator compiles the statement (EXPLAIN, never run) against "
        "an empty in-memory SQLite database to find the functions it calls: no file, clock "
        "or chance, so it answers the same on replay for a given SQLite build"
    ),
}


def module_path(name: str) -> Path | None:
    """The project's file for module ``name``, or None when it is not this project's."""
    base = PROJECT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def parsed(name: str) -> ast.Module:
    path = module_path(name)
    assert path is not None, name
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module ``tree`` imports (``from a import b`` may import module ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def is_activity_module(name: str) -> bool:
    return name.split(".")[0] == ACTIVITIES


def is_tool_implementation(name: str) -> bool:
    return name.split(".")[0] == TOOLS_PACKAGE and name not in TOOLS_RUN_WHOLE


def workflow_side_modules() -> set[str]:
    """``workflows/*`` and the project modules they import, transitively, stopping at
    activity modules and tool implementations (see the module docstring)."""
    todo = [
        "workflows" if path.stem == "__init__" else f"workflows.{path.stem}"
        for path in (PROJECT / "workflows").glob("*.py")
    ]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for imported in imported_modules(parsed(name)):
            if module_path(imported) is None or imported.split(".")[0] == "tests":
                continue
            if not (is_activity_module(imported) or is_tool_implementation(imported)):
                todo.append(imported)
    return seen


def dotted(node: ast.expr) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def violations(tree: ast.AST) -> list[str]:
    """What in ``tree`` reads the clock, chance or the environment, or does I/O."""
    found: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the module (or module.name) it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            for alias in node.names:
                if root in FORBIDDEN_MODULES or alias.name in FORBIDDEN_ATTRIBUTES.get(
                    node.module, ()
                ):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (parts := dotted(node)):
            owner = aliases.get(parts[0], parts[0]).split(".")[-1]
            owners = [owner, *parts[1:-1]]
            if parts[-1] in FORBIDDEN_ATTRIBUTES.get(owners[-1], ()):
                found.append(f"line {node.lineno}: {'.'.join(parts)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_BUILTINS
            and node.func.id not in aliases
        ):
            found.append(f"line {node.lineno}: {node.func.id}(...)")
    return found


WORKFLOW_SIDE = sorted(workflow_side_modules())


def test_the_workflow_side_modules_are_found() -> None:
    """The walk reaches what the workflows compose, so the guard below covers it, and
    stops where the workflow only holds references."""
    expected = {
        "workflows.human_in_the_loop_workflow",
        "workflows.approval_workflow",
        "workflows.approval_window",
        "workflows.decision_rules",
        "policy.risk_policy",
        "policy.default_deny",
        "models.models",
        "models.limits",
        "models.validation",
        "models.tools",
        "tools.registry",
        "constants",
    }
    assert expected <= set(WORKFLOW_SIDE)
    assert not [name for name in WORKFLOW_SIDE if is_activity_module(name)]


def outside_workflow_code(name: str, tree: ast.Module) -> set[int]:
    """The lines of ``name``'s functions in ``NOT_WORKFLOW_CODE``."""
    return {
        line
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and f"{name}.{node.name}" in NOT_WORKFLOW_CODE
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }


@pytest.mark.parametrize("name", WORKFLOW_SIDE)
def test_a_workflow_side_module_has_no_clock_chance_or_io(name: str) -> None:
    tree = parsed(name)
    skipped = outside_workflow_code(name, tree)
    found = [
        problem
        for problem in violations(tree)
        if int(problem.split(":")[0].removeprefix("line ")) not in skipped
    ]
    assert found == [], f"{module_path(name)}: workflow code must be deterministic"


@pytest.mark.parametrize("qualified", sorted(NOT_WORKFLOW_CODE))
def test_functions_left_out_are_not_workflow_code(qualified: str) -> None:
    """No workflow-side module imports them, and they still need leaving out."""
    module, _, function = qualified.rpartition(".")
    for name in WORKFLOW_SIDE:
        for node in ast.walk(parsed(name)):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                assert function not in {alias.name for alias in node.names}, name
    tree = parsed(module)
    assert [
        v
        for v in violations(tree)
        if int(v.split(":")[0][5:]) in outside_workflow_code(module, tree)
    ]


def activity_names(tree: ast.Module) -> set[str]:
    """The names a module binds from activity modules."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and is_activity_module(node.module)
        for alias in node.names
    } | {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if is_activity_module(alias.name)
    }


@pytest.mark.parametrize("name", WORKFLOW_SIDE)
def test_workflow_code_only_refers_to_activities(name: str) -> None:
    """The premise for leaving activity modules out: workflow code passes an activity to
    Temporal to schedule, or names its types, and never runs it itself."""
    tree = parsed(name)
    names = activity_names(tree)
    called = [
        f"line {node.lineno}: {'.'.join(parts)}(...)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (parts := dotted(node.func))
        and parts[0] in names
        and not (len(parts) == 1 and parts[0][:1].isupper())  # a type's constructor
    ]
    assert called == []


def project_members(value: Any) -> Iterator[Any]:
    """The project's classes and functions a type annotation names."""
    if inspect.isclass(value) and module_path(value.__module__):
        yield value
    for part in get_args(value):
        yield from project_members(part)


def validation_code() -> dict[str, Callable[..., Any] | type]:
    """What validating a proposed call's arguments runs: each registered tool's argument
    models (with their project bases and field models) and ``Tool.parse``."""
    found: dict[str, Callable[..., Any] | type] = {}
    todo: list[Any] = [Tool.parse, *(tool.arguments for tool in TOOLS.values())]
    while todo:
        member = todo.pop()
        key = f"{member.__module__}.{member.__qualname__}"
        if key in found or not module_path(member.__module__):
            continue
        found[key] = member
        if inspect.isclass(member) and issubclass(member, BaseModel):
            todo += [base for base in member.__mro__[1:] if module_path(base.__module__)]
            for field in member.model_fields.values():
                todo += list(project_members(field.annotation))
    return found


def called_functions(member: Callable[..., Any] | type) -> Iterator[FunctionType]:
    """The project's module-level functions ``member``'s code calls by name."""
    module: ModuleType = sys.modules[member.__module__]
    for node in ast.walk(ast.parse(inspect.getsource(member).lstrip())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            target = vars(module).get(node.func.id)
            if isinstance(target, FunctionType) and module_path(target.__module__):
                yield target


def tool_violations() -> dict[str, list[str]]:
    """What the workflow runs of the tool implementations, and what of it breaks the rule:
    the code ``validation_code`` names and every project function it calls, transitively.
    A module-level name bound to a forbidden module counts as importing it."""
    found: dict[str, list[str]] = {}
    todo: list[Any] = list(validation_code().values())
    seen: set[str] = set()
    while todo:
        member = todo.pop()
        key = f"{member.__module__}.{member.__qualname__}"
        if key in seen:
            continue
        seen.add(key)
        tree = ast.parse(inspect.getsource(member).lstrip())
        problems = violations(tree)
        module = vars(sys.modules[member.__module__])
        for node in ast.walk(tree):
            bound = module.get(node.id) if isinstance(node, ast.Name) else None
            if isinstance(bound, ModuleType) and bound.__name__.split(".")[0] in FORBIDDEN_MODULES:
                problems.append(f"uses module {bound.__name__}")
        if problems:
            found[key] = sorted(set(problems))
        todo += list(called_functions(member))
    return found


def test_validating_a_tool_call_in_the_workflow_has_no_clock_chance_or_io() -> None:
    assert "tools.adhoc_sql.RunSqlArgs" in validation_code()
    assert "tools.records.Filter" in validation_code()
    untolerated = {key: found for key, found in tool_violations().items() if key not in TOLERATED}
    assert untolerated == {}


def test_every_tolerated_exception_is_still_needed() -> None:
    assert set(TOLERATED) <= set(tool_violations())


@pytest.mark.parametrize(
    "source",
    [
        "import random",
        "import time",
        "from time import monotonic",
        "import secrets",
        "import socket",
        "import threading",
        "import subprocess",
        "import sqlite3",
        "import httpx",
        "import requests",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "import uuid\nx = uuid.uuid4()",
        "from uuid import uuid1",
        "import os\nx = os.urandom(8)",
        "import os\nx = os.environ.get('X')",
        "from os import urandom",
        "x = open('f').read()",
        "import asyncio\nasync def f():\n    await asyncio.to_thread(print)",
        "x = hash('a')",
    ],
)
def test_the_scan_finds_each_forbidden_thing(source: str) -> None:
    assert violations(ast.parse(source))


@pytest.mark.parametrize(
    "source",
    [
        "from temporalio import workflow\nx = workflow.now()",
        "from temporalio import workflow\nx = workflow.uuid4()",
        "from temporalio import workflow\nx = workflow.random().random()",
        "from datetime import datetime, timedelta\ndef f(at: datetime) -> timedelta: ...",
        "import asyncio\nasync def f():\n    await asyncio.sleep(1)",
    ],
)
def test_the_scan_allows_the_deterministic_ways(source: str) -> None:
    assert violations(ast.parse(source)) == []


def test_import_random_in_the_decision_rules_would_fail_the_guard() -> None:
    """The guard as it runs on the module, with one line added."""
    assert "workflows.decision_rules" in WORKFLOW_SIDE
    tree = parsed("workflows.decision_rules")
    tree.body.insert(0, ast.parse("import random").body[0])
    assert violations(tree) == ["line 1: import random"]


def test_every_outcome_ends_with_an_approval_status() -> None:
    assert set(FINAL_APPROVAL_STATUS) == set(Outcome)
