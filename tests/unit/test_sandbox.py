from __future__ import annotations

import os
import sys

import pytest

from dorag.evaluation.sandbox import Sandbox, SandboxConfig, SandboxError, Status, hidden_dirs, warn_weaker


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


# ------------------------------------------------------------------ what the sandbox enforced, and saying so


def test_isolation_records_full_isolation_as_root_and_nothing_weaker(sandbox):
    sandbox.run("assert True\n")
    iso = sandbox.isolation()
    if os.geteuid() != 0:
        assert iso["privileges_dropped"] is False and any("not running as root" in w for w in iso["weaker"])
        return
    assert iso == {"platform": "linux", "network_isolated": True, "privileges_dropped": True, "weaker": []}


def test_isolation_names_each_protection_that_is_off():
    with Sandbox(SandboxConfig(workers=1, isolate_network=False, drop_privileges=False)) as box:
        assert box.run("assert True\n").passed
        iso = box.isolation()
    assert iso["network_isolated"] is False and iso["privileges_dropped"] is False
    assert any("isolate_network=false" in w for w in iso["weaker"])
    assert any(("drop_privileges=false" if os.geteuid() == 0 else "not running as root") in w for w in iso["weaker"])


def test_a_failed_network_namespace_is_reported_as_weaker(monkeypatch):
    box = Sandbox(SandboxConfig(workers=1))
    box._network.update({True, False})  # one slot's server could not unshare its network namespace
    iso = box.isolation()
    assert iso["network_isolated"] is False
    assert any("unshare failed" in w and "can reach the network" in w for w in iso["weaker"])


def test_weaker_mode_is_one_stderr_line_once(capsys):
    iso = {"weaker": ["no network namespace (unshare failed on this kernel): programs can reach the network"]}
    assert warn_weaker(iso).startswith("warning: sandbox weaker than its default: no network namespace")
    warn_weaker(iso)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unshare failed" in err
    assert warn_weaker({"weaker": []}) is None


def test_the_sandbox_refuses_a_non_linux_platform_with_the_fix(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(SandboxError, match="needs Linux.*darwin.*container or VM"):
        Sandbox()
