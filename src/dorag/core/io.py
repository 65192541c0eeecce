"""Atomic file writes and strict JSONL reading/appending.

A reader names the file and line of every malformed record. Writers never leave a half-written file:
whole files go through a temp file and ``os.replace``; appends (used by resumable stages) are
line-at-a-time and ``repair_jsonl_tail`` drops a torn last line left by a killed process.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from dorag.core.errors import DataError


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc


def read_records(path: str | Path, what: str = "records") -> list[tuple[int, dict[str, Any]]]:
    """[(record number, record)] from a JSON list (``.json``) or JSONL file, numbered from 1 for error messages."""
    path = Path(path)
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of {what}")
        return [(i + 1, r) for i, r in enumerate(data)]
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return list(iter_jsonl_numbered(path))


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL (gzip if the name ends in .gz), atomically. Returns the count."""
    path = Path(path)
    n = 0
    with atomic_open(path, "wb") as raw:
        fh: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.suffix == ".gz" else raw
        for rec in records:
            fh.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
            n += 1
        if fh is not raw:
            fh.close()
    return n


def iter_jsonl_numbered(path: str | Path, *, allow_torn_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file (plain or .gz).

    Raises:
        DataError: naming the file and line number of the first malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            lines = fh.read().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as UTF-8 JSONL ({exc})") from exc
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if allow_torn_tail and i == last:
                return  # a process killed mid-append left an unterminated final line
            raise DataError(f"{path}:{i + 1}: malformed JSON line ({exc.msg}); fix or delete that line") from exc
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{i + 1}: expected a JSON object, got {type(rec).__name__}")
        yield i + 1, rec


def iter_jsonl(path: str | Path, *, allow_torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file (plain or .gz), skipping blank lines."""
    for _, rec in iter_jsonl_numbered(path, allow_torn_tail=allow_torn_tail):
        yield rec


def read_jsonl(path: str | Path, *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, allow_torn_tail=allow_torn_tail))


def repair_jsonl_tail(path: str | Path) -> int:
    """Truncate `path` after its last complete line (one ending in a newline that parses).

    Returns the number of bytes dropped. Used before resuming an append-only JSONL file.
    """
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # 0 when there is no newline at all
    tail = data[keep:]
    if tail.strip():
        try:
            json.loads(tail)
            # A complete record that only misses its newline: keep it and terminate it.
            with open(path, "ab") as fh:
                fh.write(b"\n")
            return 0
        except json.JSONDecodeError:
            pass
    if keep < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(keep)
    return len(data) - keep


class JsonlAppender:
    """Append records to a JSONL file, one flushed and fsynced line per record.

    A kill between records loses nothing that was written; a kill inside a write leaves at most a torn
    last line, which ``repair_jsonl_tail`` removes on resume.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl_tail(self.path)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        assert self._fh is not None, "appender is closed"
        self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def exclusive(directory: str | Path, what: str) -> Iterator[None]:
    """Hold `<directory>/.lock` while a job writes into `directory`, so that a second job on the same
    directory stops at once with one line instead of interleaving its writes with the first one's. The
    lock is the kernel's (flock): it goes when the process does, even after kill -9."""
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            who = f" (pid {pid})" if pid.isdigit() else ""
            raise DataError(f"{directory}: another {what} is writing here{who}; wait for it to finish, "
                            "or give another output directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # left empty: the next holder writes its own pid
    finally:
        os.close(fd)  # closing releases the lock
