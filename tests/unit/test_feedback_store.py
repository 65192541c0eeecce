"""The feedback store: schema migration, WAL, concurrent writers, and the export rules for SFT pairs."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.core.io import read_jsonl
from dorag.data.sft_data import load_examples
from dorag.serving.feedback import MIGRATIONS, SCHEMA_VERSION, FeedbackStore, export_feedback, feedback_pairs


def _v1_database(path: Path) -> None:
    """A database as the first schema version left it, with one rating in it."""
    conn = sqlite3.connect(path)
    for stmt in MIGRATIONS[0]:
        conn.execute(stmt)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO feedback (created_at, model, prompt, output, rating, comment) "
                 "VALUES ('2025-01-01T00:00:00Z', 'code', 'old prompt', 'old answer', 5, 'from v1')")
    conn.commit()
    conn.close()


def test_old_schema_is_migrated_in_place_and_keeps_its_rows(tmp_path):
    db = tmp_path / "fb.sqlite"
    _v1_database(db)
    store = FeedbackStore(db)
    assert store.migrated_from == 1 and SCHEMA_VERSION == 3
    new_id = store.add(model="code+rag:stdlib", prompt="p", output="o", rating=2, correction="fixed",
                       adapter="code", rag_index="stdlib", retrieved=["a", "b"])
    rows = store.rows()
    store.close()
    assert [r["prompt"] for r in rows] == ["old prompt", "p"] and rows[1]["id"] == new_id
    assert rows[0]["correction"] is None and rows[0]["kind"] == "chat" and rows[0]["comment"] == "from v1"
    assert rows[0]["verified"] == 0 and store.response("none") is None  # v3: the responses table exists
    assert json.loads(rows[1]["retrieved"]) == ["a", "b"] and rows[1]["rag_index"] == "stdlib"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {r[1] for r in conn.execute("PRAGMA table_info(feedback)")} >= {"correction", "adapter", "retrieved"}
    # opening again is a no-op
    assert FeedbackStore(db).migrated_from == SCHEMA_VERSION


def test_new_database_runs_every_migration_and_a_newer_one_is_refused(tmp_path):
    store = FeedbackStore(tmp_path / "new.sqlite")
    assert store.migrated_from == 0 and store.count() == 0
    store.close()
    conn = sqlite3.connect(tmp_path / "new.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DataError, match="schema version 99, newer than"):
        FeedbackStore(tmp_path / "new.sqlite")


def test_wal_mode_and_busy_timeout_are_on(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite", busy_timeout_ms=1234)
    store.add(model="base", prompt="p", output="o", rating=3)
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert (tmp_path / "fb.sqlite-wal").exists()
    store.close()
    # WAL is a property of the file: a fresh connection sees it too
    assert sqlite3.connect(tmp_path / "fb.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sixteen_threads_writing_at_once_lose_nothing(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite")
    per_thread, errors, ids = 25, [], []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                row = store.add(model="code", prompt=f"t{t}-{i}", output="o", rating=1 + (i % 5))
                with lock:
                    ids.append(row)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    rows = store.rows()
    store.close()
    assert len(ids) == len(set(ids)) == 16 * per_thread
    assert {r["prompt"] for r in rows} == {f"t{t}-{i}" for t in range(16) for i in range(per_thread)}
    conn = sqlite3.connect(tmp_path / "fb.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _rows(store: FeedbackStore) -> None:
    store.add(model="code", adapter="code", prompt="p-good", output="good answer", rating=5)
    store.add(model="code", adapter="code", prompt="p-ok", output="ok answer", rating=4)
    store.add(model="code", adapter="code", prompt="p-bad", output="bad answer", rating=1)
    store.add(model="code", adapter="code", prompt="p-fixed", output="wrong", rating=2, correction="right answer")
    store.add(model="code", adapter="code", prompt="p-good", output="good answer", rating=5)  # duplicate pair
    store.add(model="docstring", adapter="docstring", prompt="d-good", output="Docstring.", rating=5)
    store.add(model="base", adapter="base", prompt="b-mid", output="meh", rating=3, correction="  ")


def test_export_rules(tmp_path):
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db)
    _rows(store)
    pairs, result = feedback_pairs(store.rows(), min_rating=4)
    store.close()
    answers = {p["messages"][0]["content"]: p["messages"][1]["content"] for p in pairs}
    # well rated -> kept as is; corrected -> the correction, whatever the rating; poor and uncorrected -> dropped
    assert answers == {"p-good": "good answer", "p-ok": "ok answer", "p-fixed": "right answer", "d-good": "Docstring."}
    assert (result.written, result.from_rating, result.from_correction, result.skipped_low,
            result.skipped_duplicate) == (4, 3, 1, 2, 1)
    fixed = next(p for p in pairs if p["messages"][0]["content"] == "p-fixed")
    assert fixed["meta"]["target"] == "correction" and fixed["meta"]["rating"] == 2 and fixed["task"] == "code"

    out = tmp_path / "pairs.jsonl"
    res = export_feedback(db, out, min_rating=5, adapter="code")
    assert res.written == 2 and not list(tmp_path.glob(".pairs.jsonl.*"))  # atomic: no temp file left
    assert {r["messages"][0]["content"] for r in read_jsonl(out)} == {"p-good", "p-fixed"}
    examples = load_examples(out)  # exactly what `dorag train --data` reads
    assert [[m["role"] for m in e["messages"]] for e in examples] == [["user", "assistant"]] * 2


def test_export_with_nothing_to_export_writes_no_file(tmp_path):
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db)
    store.add(model="code", adapter="code", prompt="p", output="o", rating=1)
    store.close()
    with pytest.raises(DataError, match="no training pairs"):
        export_feedback(db, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(DataError, match="feedback database not found"):
        export_feedback(tmp_path / "missing.sqlite", tmp_path / "out.jsonl")


def test_feedback_export_cli(tmp_path, capsys):
    from dorag.cli.main import main

    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db)
    _rows(store)
    store.close()
    out = tmp_path / "pairs.jsonl"
    code = main(["feedback", "export", "--db", str(db), "--out", str(out), "--min-rating", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(out) and '"written": 4' in captured.err
    assert len(read_jsonl(out)) == 4
    code = main(["feedback", "export", "--db", str(db), "--out", str(out), "--min-rating", "9"])
    assert code == 1 and "min_rating: must be 1..5" in capsys.readouterr().err
