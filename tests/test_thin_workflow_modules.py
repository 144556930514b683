"""The sandbox re-imports the module that defines a workflow class for every run a worker
keeps in memory, so those modules stay thin: the class and its entry points only, with
everything else imported through ``imports_passed_through`` (README, "A thin workflow
module"). These checks keep the rule from eroding one helper at a time."""

import ast
from pathlib import Path

import pytest
from workflows.human_in_the_loop_run import FINAL_APPROVAL_STATUS

from models.models import Outcome

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
WORKFLOW_MODULES = ("human_in_the_loop_workflow.py", "approval_workflow.py")
ENTRY_POINTS = {"init", "run", "signal", "update", "query", "defn"}


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return target.attr if isinstance(target, ast.Attribute) else ""


def _tree(name: str) -> ast.Module:
    return ast.parse((WORKFLOWS / name).read_text())


@pytest.mark.parametrize("name", WORKFLOW_MODULES)
def test_a_workflow_module_holds_one_workflow_class_and_nothing_else(name: str) -> None:
    body = [node for node in _tree(name).body if not isinstance(node, ast.Import | ast.ImportFrom)]
    docstring, *rest = body
    assert isinstance(docstring, ast.Expr)
    passed_through = [node for node in rest if isinstance(node, ast.With)]
    classes = [node for node in rest if isinstance(node, ast.ClassDef)]
    assert len(passed_through) == 1 and len(classes) == 1
    assert len(rest) == 2, "constants and helpers belong in a passed-through module"
    (workflow_class,) = classes
    assert {_decorator_name(d) for d in workflow_class.decorator_list} == {"defn"}
    for method in workflow_class.body:
        assert isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
        decorators = {_decorator_name(d) for d in method.decorator_list}
        assert decorators & ENTRY_POINTS, f"{method.name} is not an entry point: move it out"


@pytest.mark.parametrize("name", WORKFLOW_MODULES)
def test_a_workflow_module_imports_the_project_only_through_the_sandbox(name: str) -> None:
    """An import outside ``imports_passed_through`` is re-executed in every run's sandbox."""
    tree = _tree(name)
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    for node in top_level:
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        assert module is not None and module.split(".")[0] in {"temporalio", "asyncio"}, module


def test_every_outcome_ends_with_an_approval_status() -> None:
    assert set(FINAL_APPROVAL_STATUS) == set(Outcome)
