"""gretelai/synthetic_text_to_sql loader: per-record SQLite contexts, skips, schema corpus and qrels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.data import gretel_sql
from dorag.evaluation.sandbox import Status
from dorag.evaluation.sql import score_sql

FIXTURE = Path(__file__).parents[1] / "fixtures" / "gretel_synthetic_text_to_sql.jsonl"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(gretel_sql, "default_cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def test_keeps_scorable_questions_and_counts_the_rest(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = gretel_sql.load_problems(str(FIXTURE))
    assert [p["task_id"] for p in problems] == ["GretelSQL/0", "GretelSQL/1"]
    assert [p["db_id"] for p in problems] == ["ctx5097", "ctx5098"]
    err = capsys.readouterr().err
    assert "2 questions kept" in err
    for reason in ("gold query fails on its context", "gold query writes", "context does not run on SQLite"):
        assert f"1 ({reason}" in err
    assert problems[0]["meta"]["gold_tables"] == ["timber_sales", "salesperson"]
    assert problems[0]["meta"]["sql_complexity"] == "single join"
    assert "CREATE TABLE timber_sales" in problems[0]["schema"] and "INSERT" not in problems[0]["schema"]
    for p in problems:  # gold scores itself; a wrong query does not
        assert score_sql(p["canonical_solution"], p["test"], p["db_path"]).ex
        assert not score_sql("SELECT 1", p["test"], p["db_path"]).ex
    # the databases of the 3 contexts SQLite runs (5099's gold fails on its own): no temp files left behind
    assert sorted(f.suffix for f in cache.iterdir()) == [".sqlite"] * 3
    again = gretel_sql.load_problems(str(FIXTURE))
    assert [p["db_path"] for p in again] == [p["db_path"] for p in problems]


def test_database_is_read_only_for_predictions(cache: Path) -> None:
    import hashlib

    p = gretel_sql.load_problems(str(FIXTURE))[1]
    before = hashlib.sha256(Path(p["db_path"]).read_bytes()).hexdigest()
    s = score_sql("DELETE FROM equipment_maintenance", p["test"], p["db_path"])
    assert s.status is Status.RUNTIME_ERROR and not s.ex
    assert hashlib.sha256(Path(p["db_path"]).read_bytes()).hexdigest() == before


def test_failing_context_leaves_nothing(tmp_path: Path) -> None:
    import sqlite3

    with pytest.raises(sqlite3.Error):
        gretel_sql.build_database("CREATE TABLE t (id INT) ENGINE=InnoDB;", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corpus_and_qrels_agree(cache: Path) -> None:
    from dorag.experiments.indexing import benchmark_qrels, corpus_from_sources

    docs = corpus_from_sources([f"gretel-schema:{FIXTURE}"])
    ids = {d["id"] for d in docs}
    assert ids == {"gretel:ctx5097.salesperson", "gretel:ctx5097.timber_sales", "gretel:ctx5098.equipment_maintenance"}
    sales = next(d for d in docs if d["id"] == "gretel:ctx5097.timber_sales")
    assert "sample rows" in sales["text"] and "2021-01-01" in sales["text"]
    queries, rels = benchmark_qrels("gretel-sql", benchmark_path=str(FIXTURE))
    assert [q["_id"] for q in queries] == ["GretelSQL/0", "GretelSQL/1"]
    assert queries[0]["text"].startswith("database ctx5097: ")
    assert set().union(*rels.values()) <= ids and len(rels["GretelSQL/0"]) == 2


def test_parquet_like_the_hub_files(tmp_path: Path, cache: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "synthetic_text_to_sql_test.snappy.parquet")
    problems = gretel_sql.load_problems(str(tmp_path / "synthetic_text_to_sql_test.snappy.parquet"))
    assert len(problems) == 2


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": 1, "sql_prompt": "q", "sql": "SELECT 1"}\n', ":1: record is missing sql_context"),
    ('{"id": 1, "sql_prompt": "q", "sql_context": "CREATE TABLE t (a INT);", "sql": "DELETE FROM t"}\n',
     "no scorable text-to-SQL records (1 gold query writes"),
    ("{not json\n", ":1"),
])
def test_bad_input_is_one_line_error(tmp_path: Path, cache: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as info:
        gretel_sql.load_problems(str(f))
    assert "\n" not in str(info.value)


def test_missing_path_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--benchmark-path"):
        gretel_sql.load_problems(None)
    with pytest.raises(DataError, match="file not found"):
        gretel_sql.load_problems(str(tmp_path / "nope.parquet"))
