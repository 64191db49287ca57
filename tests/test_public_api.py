"""Every package's ``__all__`` names import, and importing has no side effects."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["agents", "agents.serve", "agents.testing", "tools", "tools.ingest", "tools.sandbox", "graphs", "evals"]


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_import(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, list)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_import_loads_no_model_and_touches_no_disk(tmp_path: object) -> None:
    code = (
        "import sys, os; import agents, tools, graphs, evals, agents.testing;"
        "assert 'torch' not in sys.modules, 'torch imported at import time';"
        "assert 'pytest' not in sys.modules and 'tests' not in sys.modules, 'agents.testing needs the test suite';"
        "assert 'http.server' not in sys.modules, 'the OpenAI stub loaded before its first use';"
        "assert not os.path.exists('.arag'), 'data dir created at import time'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
