"""Adversarial programs: each is scored as not passing, the harness survives, and a sentinel outside the
temp dir is untouched. As root (CI), the sandbox child drops to an unprivileged uid before rlimits apply."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from dorag.evaluation.sandbox import Sandbox, SandboxConfig, Status


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(timeout_s=2.0, memory_mb=1024, max_procs=24, max_output_mb=4, workers=2))


@pytest.fixture()
def sentinel(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sentinel")
    f = d / "keep.txt"
    f.write_text("precious")
    return f


@pytest.fixture(scope="module")
def listener():
    """A loopback server the sandboxed program must not reach."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    hits = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            hits.append(1)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1], hits
    srv.close()


CASES = {
    "infinite_loop": ("while True:\n    pass\n", {Status.TIMEOUT}),
    "ten_gb_allocation": ("x = bytearray(10 * 1024 ** 3)\n", {Status.MEMORY}),
    "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                  {Status.TIMEOUT, Status.RUNTIME_ERROR}),
    "sys_exit_0": ("import sys\nsys.exit(0)\nassert False\n", {Status.FAIL}),
    "os_exit_0": ("import os\nos._exit(0)\nassert False\n", {Status.FAIL}),
    "kill_parent": ("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(1)\n", {Status.RUNTIME_ERROR}),
    "fake_success": ("print('PASS')\nprint('{\"passed\": true, \"result\": \"passed\"}')\nassert False\n", {Status.FAIL}),
    "stdout_100mb": ("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\nassert False\n",
                     {Status.RUNTIME_ERROR, Status.FAIL}),
    "deep_recursion": ("import sys\nsys.setrecursionlimit(10 ** 8)\ndef r(n):\n    return r(n + 1)\nr(0)\n",
                       {Status.RUNTIME_ERROR, Status.MEMORY, Status.TIMEOUT}),
    "swallow_timeout_signals": (
        "import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU, signal.SIGINT):\n"
        "    signal.signal(s, lambda *a: None)\nwhile True:\n    pass\n", {Status.TIMEOUT}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_program_does_not_pass(sandbox, sentinel, name):
    program, expected = CASES[name]
    result = sandbox.run(program)
    assert not result.passed
    assert result.status in expected, (result.status, result.detail)
    assert sentinel.read_text() == "precious"


ROOT_ONLY = "needs root: the program runs as your own user without the uid drop, so it may delete your files"


@pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_ONLY)
def test_rmtree_outside_the_temp_dir_fails(sandbox, sentinel):
    program = f"import shutil\nshutil.rmtree({str(sentinel.parent)!r})\n"
    result = sandbox.run(program)
    assert result.status is Status.RUNTIME_ERROR and "PermissionError" in result.detail
    assert sentinel.read_text() == "precious"


def test_socket_connect_is_refused(sandbox, listener):
    port, hits = listener
    result = sandbox.run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n")
    assert result.status is Status.RUNTIME_ERROR and not hits


def test_harness_keeps_working_after_the_attacks(sandbox):
    results = sandbox.run_many(["assert 1 + 1 == 2\n"] * 4)
    assert all(r.status is Status.PASS for r in results)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def test_no_sandbox_process_outlives_its_run(sandbox):
    """A daemon that leaves the program's process group (setsid) is killed when the run ends: as root with
    every process of the slot's uid, otherwise as an orphan reparented to the fork server."""
    result = sandbox.run(  # the parent waits until its child has left the group, so killpg alone cannot reach it
        "import os, sys, time\nr, w = os.pipe()\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    os.write(w, b'x')\n"
        "    time.sleep(60)\n    os._exit(0)\nos.read(r, 1)\nprint('daemon', pid, file=sys.stderr, flush=True)\nassert False\n")
    pid = int(result.stderr_tail.split("daemon", 1)[1].split()[0])
    time.sleep(0.1)
    assert not _alive(pid)
    if os.geteuid() == 0:
        uids = {sandbox.config.uid_base + i for i in range(sandbox.workers)}
        alive = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid in uids and _alive(int(entry.name)):
                        alive.append(entry.name)
                except OSError:
                    pass
        # the slots' fork servers run as root; nothing else may be left under the slots' uids
        assert not alive
