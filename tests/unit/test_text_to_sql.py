"""Spider text-to-SQL: MySQL dump -> SQLite, EX/EM scoring, SQL extraction, prompts, table qrels."""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.data import spider
from dorag.data.postprocess import extract_sql, to_completion
from dorag.data.prompts import PromptConfig, build_prompt
from dorag.data.sqldump import convert_dump, parse_dump, parse_values
from dorag.evaluation.evaluate import evaluate_samples, summarize
from dorag.evaluation.sandbox import Sandbox, SandboxConfig, Status
from dorag.cli.evaluate_cmd import format_summary
from dorag.evaluation.sql import exact_match, execute_readonly, normalize_sql, results_match, score_sql

DUMP = r"""-- MySQL dump 10.13
/*!40101 SET NAMES utf8 */;
CREATE DATABASE  IF NOT EXISTS `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `shop`;
DROP TABLE IF EXISTS `customer`;
CREATE TABLE `customer` (
  `Customer_ID` int NOT NULL AUTO_INCREMENT,
  `Name` varchar(50) COLLATE utf8mb4_general_ci DEFAULT NULL,
  `City` text COLLATE utf8mb4_general_ci,
  `Balance` decimal(19,4) DEFAULT NULL,
  PRIMARY KEY (`Customer_ID`),
  UNIQUE KEY `name_uq` (`Name`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4;
LOCK TABLES `customer` WRITE;
INSERT INTO `customer` VALUES (1,'O\'Brien','Cork',10.5000),(2,'Ann ''A''','Paris; France',NULL),(3,'Bob','a\\b\nc',-2),(4,'Cy','Paris; France',7);
UNLOCK TABLES;
CREATE TABLE `orders` (
  `Order_ID` int NOT NULL,
  `Customer_ID` int DEFAULT NULL,
  `Amount` double DEFAULT NULL,
  PRIMARY KEY (`Order_ID`),
  KEY `orders_FK_0_0` (`Customer_ID`),
  CONSTRAINT `orders_FK_0_0` FOREIGN KEY (`Customer_ID`) REFERENCES `customer` (`Customer_ID`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO `orders` VALUES (1,1,5.5),(2,1,1e2),(3,3,0.25),(4,4,5.5);
CREATE DATABASE IF NOT EXISTS `empty_db`;
USE `empty_db`;
CREATE TABLE `t` (`x` int DEFAULT NULL);
"""


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    dump = tmp_path / "dump.sql"
    dump.write_text(DUMP)
    paths = convert_dump(dump, tmp_path / "dbs")
    assert set(paths) == {"shop", "empty_db"}
    return paths["shop"]


def test_dump_converts_types_escapes_and_keys(db: Path) -> None:
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT Customer_ID, Name, City, Balance FROM customer ORDER BY Customer_ID").fetchall()
    assert rows == [(1, "O'Brien", "Cork", 10.5), (2, "Ann 'A'", "Paris; France", None), (3, "Bob", "a\\b\nc", -2),
                    (4, "Cy", "Paris; France", 7)]
    assert conn.execute("SELECT sum(Amount) FROM orders").fetchone() == (111.25,)
    ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name='orders'").fetchone()[0]
    assert 'FOREIGN KEY ("Customer_ID") REFERENCES "customer" ("Customer_ID")' in ddl
    assert "AUTO_INCREMENT" not in ddl and "COLLATE" not in ddl and "KEY `" not in ddl
    cust = conn.execute("SELECT sql FROM sqlite_master WHERE name='customer'").fetchone()[0]
    assert 'UNIQUE ("Name")' in cust and 'PRIMARY KEY ("Customer_ID")' in cust
    with pytest.raises(sqlite3.IntegrityError):  # the unique key survived
        conn.execute("INSERT INTO customer VALUES (9, 'Bob', 'x', 0)")


def test_parse_values_and_empty_database(tmp_path: Path) -> None:
    assert parse_values("(1,'a\\'b',NULL,-3.5e1,0x4142)") == [(1, "a'b", None, -35.0, b"AB")]
    assert parse_dump(DUMP)["empty_db"]["t"].rows == []


def test_readonly_execution_and_write_attempts_leave_file_unchanged(db: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for sql in ("DROP TABLE customer", "INSERT INTO customer VALUES (9,'x','y',1)", "DELETE FROM orders",
                f"ATTACH DATABASE '{tmp_path / 'evil.db'}' AS evil", "PRAGMA journal_mode=DELETE",
                "SELECT 1; DROP TABLE customer"):
        r = execute_readonly(db, sql)
        assert r.status is not Status.PASS, sql
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not (tmp_path / "evil.db").exists()


def test_runaway_recursive_cte_times_out(db: Path) -> None:
    runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    r = execute_readonly(db, runaway, timeout_s=0.3)
    assert r.status is Status.TIMEOUT and r.duration_s < 5
    s = score_sql(runaway, "SELECT count(*) FROM customer", db, timeout_s=0.3)
    assert s.status is Status.TIMEOUT and not s.ex


def test_cartesian_explosion_times_out(db: Path) -> None:
    sql = "SELECT count(*) FROM customer a, customer b, customer c, customer d, customer e, customer f, " \
          "customer g, customer h, customer i, customer j, customer k, customer l, customer m, customer n"
    assert execute_readonly(db, sql, timeout_s=0.3).status is Status.TIMEOUT


@pytest.mark.parametrize(("pred", "gold", "ex"), [
    ("SELECT name FROM customer", "SELECT Name FROM customer", True),
    ("select T1.Name from customer as T1", "SELECT Name FROM customer", True),  # alias
    ("SELECT City, Name FROM customer", "SELECT Name, City FROM customer", True),  # column order
    ("SELECT Name FROM customer ORDER BY Name DESC", "SELECT Name FROM customer ORDER BY Name", False),  # order
    ("SELECT Name FROM customer ORDER BY Name DESC", "SELECT Name FROM customer", True),  # gold unordered
    ("SELECT DISTINCT City FROM customer", "SELECT City FROM customer", False),  # duplicates count
    ("SELECT Name FROM customer WHERE Customer_ID < 3", "SELECT Name FROM customer", False),
    ("SELECT count(*) FROM orders", "SELECT count(*) FROM customer", True),  # same answer, different query
])
def test_execution_accuracy(db: Path, pred: str, gold: str, ex: bool) -> None:
    assert score_sql(pred, gold, db).ex is ex


@pytest.mark.parametrize(("pred", "status"), [
    ("SELEC Name FROM customer", Status.SYNTAX_ERROR),
    ("SELECT nope FROM customer", Status.RUNTIME_ERROR),
    ("SELECT Name FROM", Status.SYNTAX_ERROR),
    ("", Status.SYNTAX_ERROR),
])
def test_malformed_sql_is_a_failing_status(db: Path, pred: str, status: Status) -> None:
    s = score_sql(pred, "SELECT Name FROM customer", db)
    assert s.status is status and not s.ex and not s.em


def test_results_match_multiset_semantics() -> None:
    assert results_match([(1,), (1,), (2,)], [(2,), (1,), (1,)], ordered=False)
    assert not results_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], ordered=False)
    assert not results_match([(1,), (2,)], [(2,), (1,)], ordered=True)
    assert results_match([(1, "a")], [("a", 1)], ordered=True)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("SELECT  name FROM singer;", "select Name from SINGER", True),
    ("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.sid",
     "SELECT singer.name FROM singer JOIN concert ON singer.id = concert.sid", True),
    ('SELECT `name` FROM "singer" WHERE age <> 3', "SELECT name FROM singer WHERE age != 3", True),
    ("SELECT count(*) AS n FROM singer", "SELECT count(*) n FROM singer", True),
    ("SELECT name FROM singer WHERE country = 'France'", "SELECT name FROM singer WHERE country = 'france'", False),
    ("SELECT name FROM singer", "SELECT age FROM singer", False),
    ('SELECT name FROM singer WHERE country = "France"', "SELECT name FROM singer WHERE country = 'France'", True),
    ('SELECT name FROM singer WHERE country IN ("France", "Spain")',
     "select name from singer where country in ('France', 'Spain')", True),
    ("SELECT a FROM t ORDER BY a DESC LIMIT 1", "SELECT a FROM t ORDER BY a LIMIT 1", False),
    ("SELECT name FROM (SELECT name FROM singer)", "SELECT name FROM (SELECT name FROM singer) ", True),
    ("SELECT name FROM singer WHERE", "SELECT name FROM singer", False),  # unparseable: token fallback
])
def test_exact_match_normalisation(a: str, b: str, same: bool) -> None:
    assert exact_match(a, b) is same, (normalize_sql(a), normalize_sql(b))


def test_extract_sql() -> None:
    assert extract_sql("Here:\n```sql\nSELECT a FROM t;\n```\nDone") == "SELECT a FROM t"
    assert extract_sql("SELECT a FROM t WHERE b = 'x;y'; SELECT 2") == "SELECT a FROM t WHERE b = 'x;y'"
    assert extract_sql("The answer is SELECT 1") == "SELECT 1"
    assert extract_sql("```sql\nSELECT a\nFROM t") == "SELECT a\nFROM t"  # unclosed fence (stop sequence)
    assert to_completion("```sql\nSELECT 1;", "sql", "chat", "sql") == "SELECT 1"


def _problem(db: Path, gold: str, idx: int = 0) -> dict:
    return spider.to_problem(idx, "How many customers?", gold, "shop", db, spider.table_names(db), "test")


def test_prompt_has_schema_or_retrieved_tables(db: Path) -> None:
    p = _problem(db, "SELECT count(*) FROM customer")
    chat = build_prompt(p, PromptConfig(), "chat")
    user = chat.messages[-1][1]
    assert 'CREATE TABLE "customer"' in user and 'CREATE TABLE "orders"' in user and "How many customers?" in user
    assert chat.response_prefix == "```sql\n"
    rag = build_prompt(p, PromptConfig(), "chat", context="-- table: customer only")
    assert "customer only" in rag.messages[-1][1] and 'CREATE TABLE "orders"' not in rag.messages[-1][1]
    assert build_prompt(p, PromptConfig(), "completion").text.endswith("-- SQL:\n")


def test_tables_in_sql_for_qrels() -> None:
    known = ["singer", "concert", "singer_in_concert", "stadium"]
    assert spider.tables_in_sql("SELECT * FROM singer", known) == ["singer"]
    assert spider.tables_in_sql("SELECT T1.a FROM Concert AS T1 JOIN singer_in_concert AS T2 ON T1.id = T2.id "
                                "WHERE T1.x NOT IN (SELECT id FROM stadium)", known) == ["concert", "singer_in_concert", "stadium"]
    assert spider.tables_in_sql("SELECT a FROM singer AS s, stadium AS t WHERE s.x = 'FROM concert'", known) == ["singer", "stadium"]


def test_schema_documents_and_qrels(db: Path) -> None:
    docs = spider.schema_documents("shop", db, n_rows=2)
    assert [d["id"] for d in docs] == ["spider:shop.customer", "spider:shop.orders"]
    assert "O'Brien" in docs[0]["text"] and "Cy" not in docs[0]["text"]
    p = _problem(db, "SELECT T1.Name FROM customer AS T1 JOIN orders AS T2 ON T1.Customer_ID = T2.Customer_ID")
    assert spider.qrels([p]) == {"Spider/0": {"spider:shop.customer": 1, "spider:shop.orders": 1}}


def test_evaluate_samples_scores_sql_with_em_in_summary(db: Path, tmp_path: Path) -> None:
    problems = [_problem(db, "SELECT count(*) FROM customer", 0), _problem(db, "SELECT Name FROM customer", 1)]
    samples = [{"task_id": "Spider/0", "completion": "select COUNT(*) from customer", "sample_idx": 0},
               {"task_id": "Spider/1", "completion": "SELECT Name FROM customer WHERE 0", "sample_idx": 0},
               {"task_id": "Spider/1", "completion": "DROP TABLE customer", "sample_idx": 1}]
    with Sandbox(SandboxConfig(workers=1)) as sb:
        results = evaluate_samples(samples, problems, tmp_path / "r.jsonl", sb)
    assert [r["passed"] for r in results] == [True, False, False]
    assert [r["exact_match"] for r in results] == [True, False, False]
    summary = summarize(results, problems, ks=(1,), n_boot=10)
    assert summary["exact_match"] == pytest.approx(1 / 3)
    assert summary["execution_accuracy"]["value"] == pytest.approx(0.5)  # task 0: 1/1, task 1: 0/2
    printed = format_summary(summary).splitlines()
    assert any(line.split()[:2] == ["EX", "0.5000"] for line in printed)
    assert any(line.split() == ["EM", "0.3333"] for line in printed)


HAVE_DATA = all(importlib.util.find_spec(m) for m in ("evals", "intercode"))


@pytest.mark.skipif(not HAVE_DATA, reason=f"Spider subset not installed ({spider.PIP})")
def test_packaged_gold_queries_all_execute_and_score_one(tmp_path: Path) -> None:
    problems = spider.load_packaged(cache_dir=tmp_path)
    assert len(problems) == 194 and len({p["db_id"] for p in problems}) == 20
    scores = [score_sql(p["canonical_solution"], p["test"], p["db_path"]) for p in problems]
    assert all(s.status is Status.PASS and s.ex and s.em for s in scores)
    assert all(p["meta"]["gold_tables"] for p in problems)
    # A deliberately wrong set: each gold query's rows collapsed into one sentinel row. Every query runs
    # (status FAIL, not an error), none can match, even where the gold result is empty.
    wrong = [f"SELECT 'dorag-wrong', count(*) FROM ({p['canonical_solution'].strip().rstrip(';')})" for p in problems]
    scores = [score_sql(w, p["test"], p["db_path"]) for w, p in zip(wrong, problems)]
    assert [s.status for s in scores] == [Status.FAIL] * len(problems)
    assert not any(s.ex or s.em for s in scores)
    empty = {p["db_id"] for p in problems if not execute_readonly(p["db_path"], p["test"]).rows}
    assert "wta_1" in empty
    again = spider.load_packaged(cache_dir=tmp_path)  # cached: same files, not rebuilt
    assert again[0]["db_path"] == problems[0]["db_path"]


def test_spider_directory_errors_are_one_line(tmp_path: Path, db: Path) -> None:
    (tmp_path / "dev.json").write_text("[{\"question\": 1,\n")
    with pytest.raises(DataError, match=r"dev.json: invalid JSON at line 2"):
        spider.load_directory(tmp_path)
    (tmp_path / "dev.json").write_text('[{"question": "How many?", "query": "SELECT 1", "db_id": "nope"}]')
    with pytest.raises(DataError, match=r"nope.sqlite: database of record 0 not found"):
        spider.load_directory(tmp_path)
    with pytest.raises(DataError, match="Spider questions file not found"):
        spider.load_directory(tmp_path / "missing")
