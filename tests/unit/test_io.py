from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.core.io import (JsonlAppender, atomic_open, read_json, read_jsonl, repair_jsonl_tail, write_json,
                           write_jsonl)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path):
    target = tmp_path / "m.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_malformed_line_is_named_by_number(tmp_path: Path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n{oops\n')
    with pytest.raises(DataError, match=r"x.jsonl:4: malformed JSON line"):
        read_jsonl(p)


def test_non_object_line_is_rejected(tmp_path: Path):
    p = tmp_path / "x.jsonl"
    p.write_text('[1, 2]\n')
    with pytest.raises(DataError, match="x.jsonl:1: expected a JSON object"):
        read_jsonl(p)


def test_gzip_round_trip(tmp_path: Path):
    p = tmp_path / "x.jsonl.gz"
    assert write_jsonl(p, [{"i": i} for i in range(3)]) == 3
    assert read_jsonl(p) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_repair_drops_a_torn_last_line(tmp_path: Path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    assert repair_jsonl_tail(p) == len(b'{"a": ')
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]


def test_repair_keeps_a_complete_unterminated_record(tmp_path: Path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert repair_jsonl_tail(p) == 0
    assert p.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


def test_appender_appends_after_repair(tmp_path: Path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a"')
    with JsonlAppender(p) as out:
        out.write_many([{"a": 2}, {"a": 3}])
    assert [json.loads(x)["a"] for x in p.read_text().splitlines()] == [1, 2, 3]


def test_exclusive_stops_a_second_writer_and_frees_the_directory_after(tmp_path):
    import multiprocessing

    from dorag.core.io import exclusive

    ctx = multiprocessing.get_context("fork")
    holding, release = ctx.Event(), ctx.Event()

    def hold() -> None:
        with exclusive(tmp_path, "dorag ablate"):
            holding.set()
            release.wait(30)

    other = ctx.Process(target=hold)
    other.start()
    try:
        assert holding.wait(30)
        with pytest.raises(DataError, match=rf"^{tmp_path}: another dorag ablate is writing here \(pid {other.pid}\); "
                                            "wait for it to finish, or give another output directory$"):
            with exclusive(tmp_path, "dorag ablate"):
                pass
    finally:
        release.set()
        other.join(30)
    with exclusive(tmp_path, "dorag ablate"):  # free once the holder is gone
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert (tmp_path / ".lock").read_text() == ""
