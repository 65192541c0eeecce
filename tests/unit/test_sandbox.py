from __future__ import annotations

import pytest

from dorag.evaluation.sandbox import Sandbox, SandboxConfig, Status, hidden_dirs


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(timeout_s=3.0, workers=2))


@pytest.mark.parametrize("program, status", [
    ("def f(x):\n    return x + 1\nassert f(1) == 2\n", Status.PASS),
    ("assert 1 == 2\n", Status.FAIL),
    ("def f(:\n", Status.SYNTAX_ERROR),
    ("raise KeyError('k')\n", Status.RUNTIME_ERROR),
    ("import numpy as np\nassert int(np.arange(4).sum()) == 6\n", Status.PASS),
    ("x = input()\n", Status.RUNTIME_ERROR),
])
def test_statuses(sandbox, program, status):
    result = sandbox.run(program)
    assert result.status is status, result.detail
    assert result.passed is (status is Status.PASS)


def test_programs_run_in_a_fresh_writable_temp_dir(sandbox):
    program = ("import os\nassert os.listdir('.') == [] or set(os.listdir('.')) <= {'program.py', '.stdout', '.stderr'}\n"
               "open('out.txt', 'w').write('x')\nassert os.path.exists('out.txt')\n")
    assert sandbox.run(program).status is Status.PASS


def test_results_are_deterministic_and_in_order(sandbox):
    programs = [f"assert {i} % 3 != 0\n" for i in range(12)]
    first = [r.status for r in sandbox.run_many(programs)]
    second = [r.status for r in sandbox.run_many(programs)]
    assert first == second == [Status.FAIL if i % 3 == 0 else Status.PASS for i in range(12)]


def test_stderr_tail_is_captured(sandbox):
    result = sandbox.run("import sys\nsys.stderr.write('hello from stderr')\nsys.stderr.flush()\n")
    assert "hello from stderr" in result.stderr_tail


def test_hidden_dirs_finds_untraversable_ancestors(tmp_path):
    locked = tmp_path / "home"
    (locked / "env" / "lib").mkdir(parents=True)
    tmp_path.chmod(0o755)
    locked.chmod(0o700)
    try:
        plan = hidden_dirs([str(locked / "env" / "lib")])
        assert plan[-1] == (str(locked), ["env"])  # outermost first; pytest's own 700 dirs may precede
        assert [p for p, _ in plan if p.startswith(str(tmp_path))] == [str(locked)]
        assert not [p for p, _ in hidden_dirs([str(tmp_path)]) if p.startswith(str(tmp_path))]
    finally:
        locked.chmod(0o755)
