"""Code mode's sandbox: what model-written code can do, and the escapes it must not make."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from agents.rlm_agent import RlmAgent
from agents.settings import Settings
from agents.testing import function_model, scripted
from graphs.broker import RlmLimits
from tools.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxUnavailable
from tools.sandbox._isolation import isolation_problem

SUBCLASS_OS = "w = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(timeout_s=3, cpu_s=3, memory_mb=256, output_chars=1_000))


def test_code_reads_the_context_asks_a_sub_model_and_submits(sandbox: Sandbox) -> None:
    code = (
        "import re\n"
        "numbers = re.findall(r'\\d{7}', context)\n"
        "print('found', numbers)\n"
        "submit(llm_query('confirm ' + numbers[0]))\n"
    )
    asked: list[str] = []
    result = sandbox.run(code, context="the number is 7251904.", llm_query=lambda p: asked.append(p) or "yes " + p)
    assert result.error is None
    assert result.stdout == "found ['7251904']\n"
    assert result.submitted == "yes confirm 7251904"
    assert asked == ["confirm 7251904"]
    assert result.llm_queries == 1


def test_errors_in_the_code_are_reported(sandbox: Sandbox) -> None:
    assert "ZeroDivisionError" in (sandbox.run("1 / 0").error or "")
    assert "SyntaxError" in (sandbox.run("def (:").error or "")
    failing = sandbox.run("llm_query('x')", llm_query=lambda p: (_ for _ in ()).throw(RuntimeError("budget spent")))
    assert "budget spent" in (failing.error or "")
    assert "not available" in (sandbox.run("llm_query('x')").error or "")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\nos.system('touch /tmp/arag-escaped')", "import of 'os' is not allowed"),
        (SUBCLASS_OS + "w.__init__.__globals__['system']('touch /tmp/arag-escaped')", "os.system is not allowed"),
        ("print(open('/etc/passwd').read())", "name 'open' is not defined"),
        (
            SUBCLASS_OS + "print(w.__init__.__globals__['__builtins__']['open']('/etc/passwd').read())",
            "access to '/etc/passwd' is not allowed",
        ),
        (
            SUBCLASS_OS + "w.__init__.__globals__['__builtins__']['__import__']('socket')",
            "import of 'socket' is not allowed",
        ),
        (SUBCLASS_OS + "w.__init__.__globals__['listdir']('/')", "os.listdir outside the temp dir"),
        (SUBCLASS_OS + "w.__init__.__globals__['fork']()", "os.fork is not allowed"),
        ("import subprocess", "import of 'subprocess' is not allowed"),
        ("exec('print(1)')", "name 'exec' is not defined"),
    ],
    ids=[
        "os.system",
        "subclasses-system",
        "open",
        "subclasses-open",
        "socket",
        "listdir",
        "fork",
        "subprocess",
        "exec",
    ],
)
def test_escapes_are_contained_and_reported(sandbox: Sandbox, code: str, expected: str) -> None:
    result = sandbox.run(code)
    assert expected in (result.error or "")
    assert not Path("/tmp/arag-escaped").exists()


def test_no_secrets_in_the_environment(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARAG_OPENAI_API_KEY", "sk-secret-value")
    result = sandbox.run(SUBCLASS_OS + "print(dict(w.__init__.__globals__['environ']))")
    assert "sk-secret-value" not in result.stdout
    assert "'HOME': '/tmp'" in result.stdout


def test_an_infinite_loop_is_stopped(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    pass")
    assert result.limit in ("time", "cpu")
    assert "stopped" in (result.error or "")


def test_a_memory_bomb_is_stopped(sandbox: Sandbox) -> None:
    result = sandbox.run("blocks = []\nwhile True:\n    blocks.append('x' * 10_000_000)")
    assert result.limit == "memory"
    assert "memory" in (result.error or "").lower()


def test_a_10_mb_print_is_truncated(sandbox: Sandbox) -> None:
    result = sandbox.run("print('x' * 10_000_000)")
    assert len(result.stdout) == 1_000
    assert result.dropped_chars == 10_000_001 - 1_000
    assert result.limit == "output"
    assert "output truncated" in result.report()


def test_writes_stay_in_the_temp_dir(sandbox: Sandbox) -> None:
    code = (
        SUBCLASS_OS
        + "b = w.__init__.__globals__['__builtins__']\n"
        + "f = b['open']('notes.txt', 'w'); f.write('ok'); f.close()\n"
        + "print(b['open']('notes.txt').read())\n"
        + "b['open']('/var/arag-escaped', 'w')\n"
    )
    result = sandbox.run(code)
    assert result.stdout == "ok\n"
    assert "access to '/var/arag-escaped' is not allowed" in (result.error or "")
    assert not Path("/var/arag-escaped").exists()


def test_code_mode_in_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import re\nn = re.findall(r'magic number for walrus is (\\d+)', context)[0]\nsubmit(llm_query('check ' + n))"
    )
    root = scripted(
        AIMessage(content="", tool_calls=[{"name": "run_python", "args": {"code": "print(len(context))"}, "id": "a"}]),
        AIMessage(content="", tool_calls=[{"name": "run_python", "args": {"code": code}, "id": "b"}]),
    )
    sub = function_model(lambda m: "checked " + str(m[-1].content).split()[-1])
    agent = RlmAgent(root, sub_model=sub, code_mode=True, limits=RlmLimits())
    context = "filler. " * 1000 + "The special magic number for walrus is 7251904."
    result = agent.invoke("What is the special magic number for walrus?", context=context)
    assert result.exit_reason == "answered"
    assert result.answer == "checked 7251904"
    first_output = next(m for m in root.prompts[1] if isinstance(m, ToolMessage))
    assert first_output.content.strip() == str(len(context))
    assert any(n["kind"] == "llm_query" for n in result.trace)


def test_run_python_is_not_offered_without_code_mode() -> None:
    root = scripted(
        AIMessage(content="", tool_calls=[{"name": "run_python", "args": {"code": "print(1)"}, "id": "a"}]),
        "plain answer",
    )
    RlmAgent(root, sub_model=function_model(lambda m: "NONE")).invoke("q?", context="text")
    reply: Any = next(m for m in root.prompts[1] if isinstance(m, ToolMessage))
    assert "no tool named 'run_python'" in reply.content


@pytest.fixture
def no_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A machine without bubblewrap: PATH holds nothing."""
    monkeypatch.setenv("PATH", str(tmp_path))
    isolation_problem.cache_clear()
    yield
    isolation_problem.cache_clear()


def test_code_mode_refuses_to_start_without_the_os_boundary(no_isolation: None) -> None:
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap is not installed.*ARAG_RLM_CODE_MODE_UNSAFE=true"):
        Sandbox()
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        RlmAgent(scripted("x"), code_mode=True)


def test_unsafe_code_mode_warns_and_runs(no_isolation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT OS isolation"):
        sandbox = Sandbox(SandboxLimits(timeout_s=5), unsafe=True)
    assert not sandbox.isolated
    result = sandbox.run(
        "import re\nprint(re.findall(r'\\d+', context))\nsubmit(llm_query('q'))", context="a 12 b", llm_query=str.upper
    )
    assert (result.stdout, result.submitted, result.error) == ("['12']\n", "Q", None)
    assert "not allowed" in (sandbox.run("import os").error or "")  # the Python guard is all there is
    monkeypatch.setenv("ARAG_RLM_CODE_MODE", "true")
    monkeypatch.setenv("ARAG_RLM_CODE_MODE_UNSAFE", "true")
    with pytest.warns(RuntimeWarning, match="WITHOUT OS isolation"):
        agent = RlmAgent.from_settings(Settings(), chat_model=scripted("x"))
    assert agent.sandbox is not None
    assert not agent.sandbox.isolated


def test_a_fault_of_the_sandbox_itself_is_reported_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    root = scripted(
        AIMessage(content="", tool_calls=[{"name": "run_python", "args": {"code": "print(1)"}, "id": "a"}]),
        AIMessage(content="", tool_calls=[{"name": "submit", "args": {"text": "done anyway"}, "id": "b"}]),
    )
    agent = RlmAgent(root, sub_model=function_model(lambda m: "NONE"), code_mode=True, limits=RlmLimits())
    assert agent.sandbox is not None

    def broken(*args: Any, **kwargs: Any) -> SandboxResult:
        raise OSError("no file descriptors left")

    monkeypatch.setattr(agent.sandbox, "run", broken)
    result = agent.invoke("q?", context="some text")
    assert result.answer == "done anyway"
    reported = next(m for m in root.prompts[1] if isinstance(m, ToolMessage))
    assert "run_python failed in the sandbox itself: OSError: no file descriptors left" in str(reported.content)


def test_bad_utf8_and_surrogates_in_code_and_context(sandbox: Sandbox) -> None:
    result = sandbox.run("print(len(context), '\\ud800')\nsubmit('\\udfff')", context="a\ud800b")
    assert result.error is None
    assert result.stdout == "3 ?\n"
    assert result.submitted == "?"
