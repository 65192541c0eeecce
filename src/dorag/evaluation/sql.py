"""Text-to-SQL scoring: execution accuracy (EX) and normalised exact match (EM).

EX follows test-suite-sql-eval (Zhong et al. 2020): run gold and predicted SQL on the database and
compare the results as multisets of rows, as ordered lists only when the gold query has ORDER BY;
a prediction whose columns are a permutation of the gold columns counts (column order of a SELECT list
does not change the answer). Predicted SQL runs on a read-only connection (``mode=ro`` URI and
``PRAGMA query_only``) with an authorizer that refuses ATTACH, DETACH and PRAGMA, one statement at a
time, under a wall-clock deadline enforced by SQLite's progress handler.

EM compares the two queries after :func:`normalize_sql` (sqlglot parse and regenerate, identifiers
folded, table aliases resolved). It is stricter than Spider's component EM, which also ignores values
and the order of set-like clauses.
"""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dorag.core.require import require
from dorag.evaluation.sandbox import Status

_DENY = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH, sqlite3.SQLITE_PRAGMA}
_MAX_PERMUTED_COLS = 6  # 720 column orders; beyond that only the given order is compared


@dataclass
class SqlResult:
    status: Status
    rows: list[tuple[Any, ...]] | None = None
    detail: str = ""
    duration_s: float = 0.0


def _authorizer(action: int, *args: Any) -> int:
    return sqlite3.SQLITE_DENY if action in _DENY else sqlite3.SQLITE_OK


def execute_readonly(db_path: str | Path, sql: str, timeout_s: float = 5.0, max_rows: int = 100_000) -> SqlResult:
    """Run one statement read-only; errors, timeouts and oversized results are statuses, never exceptions."""
    t0 = time.perf_counter()
    if not Path(db_path).is_file():
        return SqlResult(Status.RUNTIME_ERROR, detail=f"database {db_path} not found")
    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True, check_same_thread=False)
    deadline = t0 + timeout_s
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(_authorizer)
        conn.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 1000)
        cur = conn.execute(sql)
        rows = cur.fetchmany(max_rows + 1)
        if len(rows) > max_rows:
            return SqlResult(Status.MEMORY, detail=f"more than {max_rows} rows", duration_s=time.perf_counter() - t0)
        return SqlResult(Status.PASS, rows=rows, duration_s=time.perf_counter() - t0)
    except sqlite3.OperationalError as exc:
        dt = time.perf_counter() - t0
        if "interrupted" in str(exc):
            return SqlResult(Status.TIMEOUT, detail=f"exceeded {timeout_s}s", duration_s=dt)
        status = Status.SYNTAX_ERROR if "syntax error" in str(exc) or "incomplete input" in str(exc) else Status.RUNTIME_ERROR
        return SqlResult(status, detail=f"{type(exc).__name__}: {exc}", duration_s=dt)
    except (sqlite3.Error, ValueError, OverflowError) as exc:  # Warning: several statements; ValueError: NUL
        return SqlResult(Status.RUNTIME_ERROR, detail=f"{type(exc).__name__}: {exc}",
                         duration_s=time.perf_counter() - t0)
    finally:
        conn.close()


def has_order_by(sql: str) -> bool:
    return re.search(r"\border\s+by\b", re.sub(r"'(?:[^']|'')*'", "''", sql), re.IGNORECASE) is not None


def results_match(gold: list[tuple[Any, ...]], pred: list[tuple[Any, ...]], ordered: bool) -> bool:
    """Equal as multisets (or lists when `ordered`), allowing any permutation of the predicted columns."""
    if len(gold) != len(pred):
        return False
    if not gold:
        return True
    n = len(gold[0])
    if any(len(r) != n for r in pred):
        return False
    orders = itertools.permutations(range(n)) if n <= _MAX_PERMUTED_COLS else [tuple(range(n))]
    gold_cmp = gold if ordered else Counter(gold)
    for perm in orders:
        moved = [tuple(r[i] for i in perm) for r in pred]
        if (moved if ordered else Counter(moved)) == gold_cmp:
            return True
    return False


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|\d+\.\d+|\w+|<=|>=|!=|<>|==|\|\||\S")
_VALUE_PARENTS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "Like", "ILike", "Glob", "In", "Between")


def _normalize_tree(tree: Any) -> str:
    from sqlglot import exp

    # A double-quoted name with no table prefix compared against something is a string value in
    # SQLite (Spider writes WHERE country = "France"): make it a literal before identifiers are folded.
    for col in list(tree.find_all(exp.Column)):
        ident = col.this
        if (isinstance(ident, exp.Identifier) and ident.quoted and not col.table
                and type(col.parent).__name__ in _VALUE_PARENTS and col.arg_key != "this"):
            col.replace(exp.Literal.string(ident.name))
    # Table aliases -> their table, where a table appears once (FROM singer AS T1 ... T1.name).
    tables = list(tree.find_all(exp.Table))
    counts = Counter(t.name.lower() for t in tables)
    aliases: dict[str, str] = {}
    for t in tables:
        if t.alias and counts[t.name.lower()] == 1:
            aliases[t.alias.lower()] = t.name.lower()
            t.set("alias", None)
    for col in tree.find_all(exp.Column):
        if col.table and col.table.lower() in aliases:
            col.set("table", exp.to_identifier(aliases[col.table.lower()]))
    # SQLite identifiers are case-insensitive and their quotes optional: fold both.
    for ident in tree.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
        ident.set("quoted", False)
    return tree.sql(dialect="sqlite")


@functools.lru_cache(maxsize=8192)  # the gold query is normalised once, not once per sample
def normalize_sql(sql: str) -> str:
    """A canonical spelling of a query for exact match, from sqlglot's SQLite parser.

    Both queries are parsed and regenerated, which normalises whitespace, keyword case, the optional
    ``AS``, ``<>``/``!=`` and a trailing ``;``. On the tree: identifiers are lower-cased and unquoted
    (SQLite identifiers are case-insensitive); a double-quoted bare name compared with something
    (``country = "France"``) becomes the string ``'France'``; table aliases are replaced by their table
    when the table occurs once (``FROM singer AS T1 ... T1.name`` equals ``FROM singer ... singer.name``).
    String literals keep their case. Text sqlglot cannot parse falls back to a token-level spelling
    (whitespace and case folded), so a broken prediction still gets a deterministic, non-matching form.
    """
    text = sql.strip().rstrip(";").strip()
    sqlglot = require("sqlglot", extra="eval")
    try:
        trees = sqlglot.parse(text, read="sqlite")
        if len(trees) == 1 and trees[0] is not None:
            return _normalize_tree(trees[0])
    except (sqlglot.errors.SqlglotError, ValueError, RecursionError):
        pass
    return " ".join(t if t.startswith("'") else t.lower() for t in _TOKEN.findall(text))


def exact_match(pred: str, gold: str) -> bool:
    return normalize_sql(pred) == normalize_sql(gold)


@dataclass
class SqlScore:
    status: Status
    ex: bool
    em: bool
    detail: str
    duration_s: float


def score_sql(pred: str, gold: str, db_path: str | Path, timeout_s: float = 5.0,
              gold_result: SqlResult | None = None) -> SqlScore:
    """EX and EM of one prediction; `gold_result` reuses a gold execution across samples of one task."""
    em = exact_match(pred, gold)
    if not pred.strip():
        return SqlScore(Status.SYNTAX_ERROR, False, em, "empty query", 0.0)
    g = gold_result or execute_readonly(db_path, gold, timeout_s)
    if g.status is not Status.PASS:
        return SqlScore(Status.RUNTIME_ERROR, False, em, f"gold query failed: {g.status.value} {g.detail}", g.duration_s)
    p = execute_readonly(db_path, pred, timeout_s)
    if p.status is not Status.PASS:
        return SqlScore(p.status, False, em, p.detail, p.duration_s)
    ok = results_match(g.rows or [], p.rows or [], has_order_by(gold))
    return SqlScore(Status.PASS if ok else Status.FAIL, ok, em, "" if ok else "result differs from gold", p.duration_s)
