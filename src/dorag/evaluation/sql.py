"""Text-to-SQL scoring: execution accuracy (EX) and normalised exact match (EM).

EX follows test-suite-sql-eval (Zhong et al. 2020): run gold and predicted SQL on the database and
compare the results as multisets of rows, as ordered lists only when the gold query has ORDER BY;
a prediction whose columns are a permutation of the gold columns counts (column order of a SELECT list
does not change the answer). Predicted SQL runs on a read-only connection (``mode=ro`` URI and
``PRAGMA query_only``) with an authorizer that refuses ATTACH, DETACH and PRAGMA, one statement at a
time, under a wall-clock deadline enforced by SQLite's progress handler.

EM compares the two queries after :func:`normalize_sql`. It is a string-level normaliser, stricter
than Spider's component EM (which ignores values and the order of set-like clauses).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
_KEYWORDS = frozenset("""select from where group by order having limit offset join inner left right outer cross
natural on using as and or not in is null like glob between exists distinct all union intersect except case when then
else end asc desc count sum avg min max with recursive cast collate""".split())


def normalize_sql(sql: str) -> str:
    """A canonical spelling of a query for exact match.

    Normalises: whitespace; case of keywords and identifiers (SQLite identifiers are case-insensitive);
    identifier quotes (``"t"``, `` `t` ``, ``[t]`` -> ``t``); string quotes (``"x"`` as a value -> ``'x'``
    only when the quoted text is not an identifier of the query, a heuristic); a trailing ``;``; ``<>`` ->
    ``!=``; the optional ``AS`` before aliases; and table aliases (each alias is replaced by the table name
    when that is unambiguous, so ``FROM singer AS T1 ... T1.name`` equals ``FROM singer ... singer.name``).
    String literals keep their case.
    """
    tokens = [t for t in _TOKEN.findall(sql.strip().rstrip(";").strip())]
    out: list[str] = []
    for t in tokens:
        if t.startswith("'"):
            out.append(t)
        elif t[0] in '"`[':
            out.append(t[1:-1].lower())
        elif t == "<>":
            out.append("!=")
        elif t == "==":
            out.append("=")
        else:
            out.append(t.lower())
    # Drop AS before aliases and record table aliases: FROM/JOIN <table> [AS] <alias>
    aliases: dict[str, str] = {}
    clean: list[str] = []
    i = 0
    while i < len(out):
        t = out[i]
        if t == "as" and clean and i + 1 < len(out) and out[i + 1] not in _KEYWORDS and clean[-1] != "(":
            prev2 = clean[-2] if len(clean) >= 2 else ""
            if prev2 in ("from", "join", ","):
                aliases.setdefault(out[i + 1], clean[-1])
            i += 1
            continue
        if (clean and len(clean) >= 2 and clean[-2] in ("from", "join") and re.fullmatch(r"\w+", clean[-1])
                and re.fullmatch(r"[a-z_]\w*", t) and t not in _KEYWORDS):
            aliases.setdefault(t, clean[-1])  # FROM singer t1
        clean.append(t)
        i += 1
    counts = Counter(aliases.values())
    usable = {a: tbl for a, tbl in aliases.items() if counts[tbl] == 1 and a != tbl}
    result: list[str] = []
    for j, t in enumerate(clean):
        if t in usable:
            prev = result[-1] if result else ""
            if prev == usable[t]:  # "singer t1" -> drop the alias itself
                continue
            if j + 1 < len(clean) and clean[j + 1] == ".":
                result.append(usable[t])
                continue
        result.append(t)
    text = " ".join(result)
    text = re.sub(r" ?\. ?", ".", text)
    text = re.sub(r"\( ", "(", text)
    return re.sub(r" \)", ")", text).replace(" ,", ",")


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
