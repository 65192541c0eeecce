"""dorag's text-to-SQL execution scoring against plain sqlite3 execution, on the packaged Spider subset.

Each of the 194 questions contributes four predictions:
- the gold query;
- the gold query with its SELECT columns reversed (sqlglot; only where there are 2+ plain columns);
- the gold query with `LIMIT 1` (a different result, unless the gold already has one row);
- a wrong query over the gold's result (`SELECT 'dorag-wrong', count(*) FROM (<gold>)`).

dorag (`score_sql`: a read-only connection, `query_only`, an authorizer that refuses ATTACH and PRAGMA, a
deadline, multiset comparison with column permutations, order only when the gold has ORDER BY) scores them
against the reference most scripts use: `sqlite3.connect(db).execute(sql).fetchall()` for both queries,
then the same multiset / ordered comparison without column permutations. The script prints both wall times,
their ratio (what dorag's safety costs), the time of the whole `score_sql` (EX plus exact match, which parses
both queries with sqlglot), and where the verdicts differ. The reversed-column
predictions are expected to differ: Spider's execution accuracy counts a permutation of the columns as
correct, the plain comparison does not.

    python bench/sql.py
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter

from timing import best_of

from dorag.evaluation.benchmarks import load_problems
from dorag.evaluation.sql import Status, execute_readonly, has_order_by, normalize_sql, results_match, score_sql


def reversed_columns(sql: str) -> str | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or len(tree.expressions) < 2 or any(isinstance(e, exp.Star) for e in tree.expressions):
        return None
    tree.set("expressions", list(reversed(tree.expressions)))
    return tree.sql(dialect="sqlite")


def predictions(problems: list[dict]) -> list[tuple[str, dict, str]]:
    out = []
    for p in problems:
        gold = p["canonical_solution"].rstrip().rstrip(";")
        out.append(("gold", p, gold))
        rev = reversed_columns(gold)
        if rev:
            out.append(("reversed columns", p, rev))
        out.append(("limit 1", p, f"SELECT * FROM ({gold}) LIMIT 1"))
        out.append(("wrong", p, f"SELECT 'dorag-wrong', count(*) FROM ({gold})"))
    return out


def plain(pred: str, gold: str, db_path: str) -> bool:
    """The reference: both queries on a plain connection, result multisets (or lists under ORDER BY) equal."""
    conn = sqlite3.connect(db_path)
    try:
        g = conn.execute(gold).fetchall()
        try:
            r = conn.execute(pred).fetchall()
        except sqlite3.Error:
            return False
    finally:
        conn.close()
    return r == g if has_order_by(gold) else Counter(r) == Counter(g)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many timings for each side")
    args = ap.parse_args()
    problems = load_problems("spider")
    preds = predictions(problems)

    def ours() -> list[bool]:  # dorag's EX path: the same work as the reference, run safely
        verdicts = []
        for _, p, sql in preds:
            g, r = execute_readonly(p["db_path"], p["test"]), execute_readonly(p["db_path"], sql)
            verdicts.append(g.status is Status.PASS and r.status is Status.PASS
                            and results_match(g.rows or [], r.rows or [], has_order_by(p["test"])))
        return verdicts

    def full() -> list[bool]:  # what `dorag evaluate` runs per sample: EX and EM (sqlglot), no cache carried over
        normalize_sql.cache_clear()
        return [score_sql(sql, p["test"], p["db_path"]).ex for _, p, sql in preds]

    def theirs() -> list[bool]:
        return [plain(sql, p["test"], p["db_path"]) for _, p, sql in preds]

    timings = {name: best_of(fn, args.repeat) for name, fn in (("dorag", ours), ("plain", theirs), ("dorag_ex_em", full))}
    (t_ours, v_ours), (t_plain, v_plain), (t_full, v_full) = timings["dorag"], timings["plain"], timings["dorag_ex_em"]
    kinds = sorted({k for k, _, _ in preds})
    by_kind = {k: {"n": sum(1 for kk, _, _ in preds if kk == k),
                   "dorag_correct": sum(v for (kk, _, _), v in zip(preds, v_ours) if kk == k),
                   "plain_correct": sum(v for (kk, _, _), v in zip(preds, v_plain) if kk == k)} for k in kinds}
    differ = [(k, p["task_id"]) for (k, p, _), a, b in zip(preds, v_ours, v_plain) if a != b]
    figures = {
        "questions": len(problems),
        "predictions": len(preds),
        "dorag_s": round(t_ours, 3),
        "plain_s": round(t_plain, 3),
        "dorag_cost": round(t_ours / t_plain, 2),
        "dorag_ex_and_em_s": round(t_full, 3),
        "by_kind": by_kind,
        "verdicts_differ": len(differ),
        "differ_outside_reversed_columns": [d for d in differ if d[0] != "reversed columns"],
    }
    print(json.dumps(figures, indent=2))
    gold = by_kind["gold"]
    ok = v_full == v_ours and gold["dorag_correct"] == gold["n"] and by_kind["wrong"]["dorag_correct"] == 0 and not figures["differ_outside_reversed_columns"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
