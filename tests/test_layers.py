"""The layering, checked on the source: each layer imports only the layers below it.

tools (engines, ingestion, long-context tools, the sandbox) <- graphs (LangGraph state machines)
<- agents (agents, settings, serving) <- evals (harness, benchmarks). Sub-commands of ``arag``
that live above agents come in through the ``arag.commands`` entry points (pyproject.toml).
Graphs read no environment: settings reach them as arguments.
"""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import typer

import agents.cli

ROOT = Path(__file__).parents[1]
ABOVE = {"tools": {"graphs", "agents", "evals"}, "graphs": {"agents", "evals"}, "agents": {"evals"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] in ABOVE[layer]
    ]
    assert upward == []


def test_graphs_read_no_environment() -> None:
    reads = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "graphs").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "os.environ" in line or "getenv(" in line
    ]
    assert reads == []


def test_arag_eval_comes_through_the_entry_points() -> None:
    names = {group.name for group in agents.cli.app.registered_groups}
    assert {"store", "eval"} <= names


def test_a_sub_command_that_fails_to_load_is_left_out_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = EntryPoint(name="broken", value="no_such_module_here:app", group="arag.commands")
    fine = EntryPoint(name="eval", value="evals.cli:eval_app", group="arag.commands")
    monkeypatch.setattr(agents.cli, "entry_points", lambda group: [broken, fine])
    monkeypatch.setattr(agents.cli, "app", typer.Typer())
    agents.cli._register_subcommands()
    assert {group.name for group in agents.cli.app.registered_groups} == {"store", "eval"}
    assert "`arag broken` is unavailable" in capsys.readouterr().err
