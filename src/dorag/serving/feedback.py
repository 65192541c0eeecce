"""The feedback store: ratings and corrected answers in SQLite, and their export as SFT pairs.

SQLite in WAL mode: readers never block the writer, and a committed write survives a killed server (the
WAL is replayed on the next open). Each thread gets its own connection (sqlite3 connections must not be
shared across threads without care); writers wait up to `busy_timeout_ms` for one another instead of
failing with "database is locked". Every write is its own committed transaction before the API answers.

The schema is versioned with ``PRAGMA user_version``; opening a database runs the migrations it lacks, in
one transaction each, so an old file is upgraded in place and a new one is built by the same steps.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import write_jsonl
from dorag.data.sft_data import make_example

# Migration i brings a database from user_version i to i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: ratings of outputs
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            output TEXT NOT NULL,
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
            comment TEXT
        )""",
    ),
    (  # 2: corrected answers, the adapter and index behind the answer, what was retrieved, latency
        "ALTER TABLE feedback ADD COLUMN correction TEXT",
        "ALTER TABLE feedback ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat'",
        "ALTER TABLE feedback ADD COLUMN adapter TEXT",
        "ALTER TABLE feedback ADD COLUMN rag_index TEXT",
        "ALTER TABLE feedback ADD COLUMN retrieved TEXT",
        "ALTER TABLE feedback ADD COLUMN response_id TEXT",
        "ALTER TABLE feedback ADD COLUMN latency_ms REAL",
        "CREATE INDEX feedback_adapter ON feedback (adapter)",
    ),
    (  # 3: the answers this server gave, so a rating can be checked against the answer it rates
        """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            adapter TEXT NOT NULL,
            outputs TEXT NOT NULL
        )""",
        "ALTER TABLE feedback ADD COLUMN verified INTEGER NOT NULL DEFAULT 0",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
COLUMNS = ("model", "prompt", "output", "rating", "comment", "correction", "kind", "adapter", "rag_index",
           "retrieved", "response_id", "latency_ms", "verified")


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations `conn`'s database lacks; returns the version it had. A newer file is an error."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DataError(f"feedback database has schema version {version}, newer than this dorag's "
                        f"{SCHEMA_VERSION}; upgrade dorag")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have migrated while we waited for the write lock
            if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
                conn.execute("COMMIT")
                continue
            for stmt in MIGRATIONS[target - 1]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


class FeedbackStore:
    """``add(...)`` from any thread; ``rows()`` to read back. One SQLite connection per thread."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.migrated_from = migrate(self._conn())

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is left open implicitly
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                conn.execute("PRAGMA synchronous = FULL")  # WAL + FULL: a commit survives power loss too
            except sqlite3.DatabaseError as exc:
                raise DataError(f"{self.path}: cannot open the feedback database ({exc})") from exc
            if mode.lower() != "wal":
                raise DataError(f"{self.path}: SQLite refused WAL mode (journal_mode={mode}); use a local disk")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def add(self, **fields: Any) -> int:
        """Insert one rating (committed before this returns); returns its id."""
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown feedback fields: {', '.join(sorted(unknown))}")
        row = dict(fields)
        if isinstance(row.get("retrieved"), (list, tuple)):
            row["retrieved"] = json.dumps(list(row["retrieved"]))
        row["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(f"INSERT INTO feedback ({names}) VALUES ({marks})", tuple(row.values()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(cur.lastrowid)

    def record_response(self, response_id: str, adapter: str, outputs: list[str]) -> None:
        """Keep what the server answered under `response_id`, and with which adapter ("base" for none)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO responses (id, created_at, adapter, outputs) VALUES (?, ?, ?, ?)",
                         (response_id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), adapter,
                          json.dumps(outputs)))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def response(self, response_id: str) -> dict[str, Any] | None:
        """The recorded answer `response_id`, with `outputs` as a list; None when this server never gave it."""
        row = self._conn().execute("SELECT * FROM responses WHERE id = ?", (response_id,)).fetchone()
        return None if row is None else {**dict(row), "outputs": json.loads(row["outputs"])}

    def rows(self, adapter: str | None = None, verified_only: bool = False) -> list[dict[str, Any]]:
        sql, where, args = "SELECT * FROM feedback", [], []
        if adapter is not None:
            where.append("coalesce(adapter, 'base') = ?")
            args.append(adapter)
        if verified_only:
            where.append("verified = 1")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(r) for r in self._conn().execute(sql + " ORDER BY id", args)]

    def count(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM feedback").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()


@dataclass
class ExportResult:
    written: int
    from_rating: int  # well-rated outputs kept as they are
    from_correction: int  # corrected answers (they replace the rated output, whatever its rating)
    skipped_low: int  # poorly rated with no correction
    skipped_duplicate: int


def feedback_pairs(rows: list[dict[str, Any]], min_rating: int = 4) -> tuple[list[dict[str, Any]], ExportResult]:
    """SFT examples from feedback rows.

    A corrected answer always becomes the target (a user who fixed an answer said what it should be); an
    uncorrected answer is kept if rated at least `min_rating`; anything else is dropped. The same
    (prompt, answer) pair is kept once.
    """
    out, seen = [], set()
    n_rating = n_fix = n_low = n_dup = 0
    for r in rows:
        correction = (r.get("correction") or "").strip()
        if correction:
            answer, source = r["correction"], "correction"
        elif r["rating"] >= min_rating and r["output"].strip():
            answer, source = r["output"], "rating"
        else:
            n_low += 1
            continue
        key = (r["prompt"], answer)
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        n_fix += source == "correction"
        n_rating += source == "rating"
        meta = {"source": "feedback", "feedback_id": r["id"], "target": source, "rating": r["rating"],
                "model": r["model"], "adapter": r.get("adapter") or "base", "rag_index": r.get("rag_index"),
                "created_at": r["created_at"]}
        out.append(make_example(f"feedback:{r['id']}", r.get("adapter") or "code", r["prompt"], answer, meta))
    return out, ExportResult(len(out), n_rating, n_fix, n_low, n_dup)


def export_feedback(db: str | Path, out: str | Path, min_rating: int = 4,
                    adapter: str | None = None, verified_only: bool = False) -> ExportResult:
    """Write the pairs of `db` (optionally one adapter's, optionally only ratings checked against the answer
    the server recorded) as the chat JSONL `dorag train --data` reads, atomically. Opening the database
    migrates it to the current schema."""
    if not 1 <= min_rating <= 5:
        raise DataError(f"min_rating: must be 1..5, got {min_rating}")
    if not Path(db).is_file():
        raise DataError(f"{db}: feedback database not found (dorag serve --feedback-db writes it)")
    store = FeedbackStore(db)
    try:
        pairs, result = feedback_pairs(store.rows(adapter, verified_only), min_rating)
    finally:
        store.close()
    if not pairs:
        scope = (", adapter " + adapter if adapter else "") + (", verified ratings only" if verified_only else "")
        raise DataError(f"{db}: no training pairs ({result.skipped_low} ratings below {min_rating} without a "
                        f"correction{scope}); lower --min-rating or collect more")
    write_jsonl(out, pairs)
    return result
