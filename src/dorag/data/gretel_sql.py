"""gretelai/synthetic_text_to_sql, CodeRAG's schema-snippet source, as a text-to-SQL benchmark and corpus.

Each record of the official files (``synthetic_text_to_sql_{train,test}.snappy.parquet`` on the hub) has
``id, domain, sql_complexity, sql_task_type, sql_prompt`` (the question), ``sql_context`` (the CREATE TABLE
and INSERT statements of a small database), ``sql`` (the gold query) and ``sql_explanation``.

Each distinct context is executed into its own SQLite file, cached under
``~/.cache/dorag/gretel-sql/<sha256 of the context>.sqlite`` (written to a temp file, then renamed), so a
question is scored by execution accuracy exactly as a Spider question is. Records that cannot be scored
that way are skipped and counted: gold queries that write (the ``data manipulation`` and ``data
definition`` task types), contexts SQLite cannot run (MySQL-only syntax) and gold queries that fail on
their context. Each table of a context becomes one schema document (``gretel:<db_id>.<table>``), the
corpus that schema retrieval searches.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import read_records as read_json_records

HUB_ID = "gretelai/synthetic_text_to_sql"
FIELDS = ("id", "sql_prompt", "sql_context", "sql")
DOC_PREFIX = "gretel"
_READ_ONLY = re.compile(r"^\s*(?:SELECT|WITH)\b", re.IGNORECASE)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "dorag" / "gretel-sql"


def read_records(path: str) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """(origin, [(record number, record)]) from a local .parquet/.jsonl/.json file or the hub id
    (``gretelai/synthetic_text_to_sql`` or ``...:train``; test split by default)."""
    if path == HUB_ID or path.startswith(HUB_ID + ":"):
        split = path.split(":", 1)[1] if ":" in path else "test"
        from dorag.data.hub import hub_rows

        return f"{HUB_ID}:{split}", hub_rows(HUB_ID, None, split)
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found (give a gretelai/synthetic_text_to_sql file: .parquet, .jsonl or "
                        f".json, or the hub id {HUB_ID})")
    if p.suffix == ".parquet":
        from dorag.core.require import require

        pq = require("pyarrow.parquet", extra="data", package="pyarrow")
        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"{p}: not a readable parquet file ({type(exc).__name__}: {exc})") from exc
        records = [(i + 1, r) for i, r in enumerate(rows)]
    else:
        records = read_json_records(p)
    for n, rec in records:
        missing = [f for f in FIELDS if not isinstance(rec, dict) or rec.get(f) in (None, "")]
        if missing:
            raise DataError(f"{p}:{n}: record is missing {', '.join(missing)} (the gretelai/synthetic_text_to_sql "
                            f"format needs {', '.join(FIELDS)})")
    return str(p), records


def build_database(context: str, cache_dir: str | Path | None = None) -> Path:
    """The SQLite file that `context` (CREATE TABLE + INSERT statements) builds; cached by its hash.

    Raises sqlite3.Error when SQLite cannot run the context; nothing is left behind then.
    """
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{hashlib.sha256(context.encode()).hexdigest()[:20]}.sqlite"
    if final.is_file():
        return final
    tmp = root / f".{final.stem}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(context)
        conn.commit()
    except sqlite3.Error:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    os.replace(tmp, final)
    return final


def _runs(db: Path, sql: str, timeout_s: float = 5.0) -> bool:
    """Whether `sql` runs on a read-only connection to `db` within `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        conn.execute(sql.strip().rstrip(";")).fetchall()
        return True
    except (sqlite3.Error, sqlite3.Warning, ValueError):
        return False
    finally:
        conn.close()


def load_problems(path: str | None = None, cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Read-only questions whose context and gold query run on SQLite, as text-to-SQL problems."""
    from dorag.data import spider

    if not path:
        raise DataError(f"gretel-sql has no offline copy: pass --benchmark-path with a local file in the "
                        f"{HUB_ID} format (.parquet, .jsonl or .json), or the hub id {HUB_ID}")
    origin, records = read_records(path)
    problems: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for _n, rec in records:
        gold = str(rec["sql"]).strip()
        if not _READ_ONLY.match(gold):
            skipped["gold query writes: not scorable on a read-only copy"] += 1
            continue
        try:
            db = build_database(str(rec["sql_context"]), cache_dir)
        except sqlite3.Error:
            skipped["context does not run on SQLite"] += 1
            continue
        if not _runs(db, gold):
            skipped["gold query fails on its context"] += 1
            continue
        db_id = f"ctx{rec['id']}"
        prob = spider.to_problem(len(problems), str(rec["sql_prompt"]).strip(), gold, db_id, db,
                                 spider.table_names(db), "gretel", task_prefix="GretelSQL", doc_prefix=DOC_PREFIX)
        prob["meta"].update({k: rec[k] for k in ("domain", "sql_complexity", "sql_task_type") if k in rec})
        problems.append(prob)
    if not problems:
        why = "; ".join(f"{n} {r}" for r, n in skipped.most_common()) or "no records"
        raise DataError(f"{origin}: no scorable text-to-SQL records ({why})")
    if skipped:
        print(f"{origin}: {len(problems)} questions kept, skipped " +
              ", ".join(f"{n} ({r})" for r, n in skipped.most_common()), file=sys.stderr)
    return problems


def corpus(path: str | None = None, n_rows: int = 3, cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One schema document per table of every kept record's context."""
    from dorag.data import spider

    seen: dict[str, str] = {}
    for p in load_problems(path, cache_dir):
        seen.setdefault(p["db_id"], p["db_path"])
    return [d for db, p in seen.items()
            for d in spider.schema_documents(db, p, n_rows, doc_prefix=DOC_PREFIX, source="gretel-schema")]
