"""Convert a mysqldump file (one or more databases) into SQLite database files.

Handles what ``mysqldump`` writes: ``CREATE DATABASE``/``USE`` switch the database; ``CREATE TABLE``
keeps columns (MySQL type names are valid SQLite declared types, so each column keeps the affinity
SQLite's own rules give it, as in Spider's original SQLite files), ``PRIMARY KEY``, ``UNIQUE`` and
``FOREIGN KEY ... REFERENCES``, and drops MySQL-only clauses (``AUTO_INCREMENT``, ``COLLATE``,
``CHARACTER SET``, ``COMMENT``, ``ON UPDATE``, plain ``KEY`` indexes, table options). ``INSERT`` rows are
parsed into Python values (MySQL backslash escapes and doubled quotes decoded) and bound as parameters,
so no quoting survives into SQLite. Comments, ``/*!...*/`` version comments, ``SET``, ``LOCK``,
``GRANT``, ``CREATE USER`` and the like are skipped.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError

_ESCAPES = {"0": "\0", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "\\": "\\",
            "%": "\\%", "_": "\\_"}  # MySQL keeps the backslash of \% and \_ (they matter only in LIKE)
_DROP_COLUMN_CLAUSES = re.compile(
    r"\s+(AUTO_INCREMENT|COLLATE\s+\w+|CHARACTER\s+SET\s+\w+|COMMENT\s+'(?:[^'\\]|\\.|'')*'|"
    r"ON\s+UPDATE\s+CURRENT_TIMESTAMP(?:\(\d*\))?|unsigned|zerofill)", re.IGNORECASE)


@dataclass
class Table:
    name: str
    ddl: str  # the SQLite CREATE TABLE statement
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def split_statements(text: str) -> Iterator[str]:
    """Statements of a SQL script, split at ``;`` outside quotes; comments (``--``, ``#``, ``/* */``) removed."""
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if text[j] == "\\" and c != "`":
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise DataError(f"unterminated {c} quote starting at offset {i}")
            buf.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("--", i) and (i + 2 >= n or text[i + 2] in " \t\r\n") or c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise DataError(f"unterminated /* comment starting at offset {i}")
            i = j + 2
            buf.append(" ")
        elif c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                yield stmt
            buf = []
            i += 1
        else:
            j = i + 1
            while j < n and text[j] not in "'\"`;-#/":
                j += 1
            buf.append(text[i:j])
            i = j
    stmt = "".join(buf).strip()
    if stmt:
        yield stmt


def _split_top_level(body: str) -> list[str]:
    """Split at commas outside parentheses and quotes."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if c in "'\"`":
            j = i + 1
            while j < len(body) and body[j] != c:
                j += 2 if body[j] == "\\" and c != "`" else 1
            i = j
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
        i += 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]


def _ident(text: str) -> str:
    """A MySQL identifier (backticked or bare) as a double-quoted SQLite identifier."""
    name = text.strip()
    if name.startswith("`") and name.endswith("`"):
        name = name[1:-1].replace("``", "`")
    return '"' + name.replace('"', '""') + '"'


def _ident_list(text: str) -> str:
    return ", ".join(_ident(re.sub(r"\(\d+\)$", "", p.strip())) for p in text.split(","))  # drop prefix lengths


def convert_create_table(stmt: str) -> tuple[str, str]:
    """(table name, SQLite CREATE TABLE) for a MySQL ``CREATE TABLE`` statement."""
    m = re.match(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(`(?:[^`]|``)+`|\w+)\s*\((.*)\)[^)]*$", stmt,
                 re.IGNORECASE | re.DOTALL)
    if not m:
        raise DataError(f"cannot parse CREATE TABLE: {stmt[:120]!r}")
    name = _ident(m.group(1))[1:-1].replace('""', '"')
    items = []
    for part in _split_top_level(m.group(2)):
        up = part.upper()
        if up.startswith("PRIMARY KEY"):
            cols = re.search(r"\((.*)\)", part, re.DOTALL)
            items.append(f"PRIMARY KEY ({_ident_list(cols.group(1))})")  # type: ignore[union-attr]
        elif up.startswith(("UNIQUE KEY", "UNIQUE INDEX", "UNIQUE")):
            cols = re.search(r"\(([^()]*(?:\(\d+\)[^()]*)*)\)\s*(?:USING\s+\w+)?$", part, re.DOTALL)
            if cols:
                items.append(f"UNIQUE ({_ident_list(cols.group(1))})")
        elif up.startswith(("KEY", "INDEX", "FULLTEXT", "SPATIAL")):
            continue  # a secondary index: no effect on results
        elif up.startswith(("CONSTRAINT", "FOREIGN KEY")):
            fk = re.search(r"FOREIGN\s+KEY\s*\((.*?)\)\s*REFERENCES\s+(`(?:[^`]|``)+`|\w+)\s*\((.*?)\)", part,
                           re.IGNORECASE | re.DOTALL)
            if fk:
                items.append(f"FOREIGN KEY ({_ident_list(fk.group(1))}) REFERENCES {_ident(fk.group(2))} "
                             f"({_ident_list(fk.group(3))})")
        elif up.startswith("CHECK"):
            continue
        else:
            col = re.match(r"(`(?:[^`]|``)+`|\w+)\s+(.*)$", part, re.DOTALL)
            if not col:
                raise DataError(f"cannot parse column definition {part!r} of table {name!r}")
            rest = _DROP_COLUMN_CLAUSES.sub("", " " + col.group(2)).strip()
            items.append(f"{_ident(col.group(1))} {rest}")
    ddl = f"CREATE TABLE {_ident(name)} (\n  " + ",\n  ".join(items) + "\n)"
    return name, ddl


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_values(text: str) -> list[tuple[Any, ...]]:
    """Rows of a MySQL ``VALUES (...),(...)`` list as Python tuples."""
    rows: list[tuple[Any, ...]] = []
    i, n = 0, len(text)
    row: list[Any] | None = None
    while i < n:
        c = text[i]
        if c in " \t\r\n,":
            i += 1
        elif c == "(" and row is None:
            row, i = [], i + 1
        elif c == ")" and row is not None:
            rows.append(tuple(row))
            row, i = None, i + 1
        elif row is None:
            raise DataError(f"unexpected {c!r} at offset {i} of a VALUES list")
        elif c in "'\"":
            out, j = [], i + 1
            while True:
                if j >= n:
                    raise DataError(f"unterminated string at offset {i} of a VALUES list")
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    out.append(_ESCAPES.get(text[j + 1], text[j + 1]))
                    j += 2
                elif ch == c and j + 1 < n and text[j + 1] == c:
                    out.append(c)
                    j += 2
                elif ch == c:
                    break
                else:
                    out.append(ch)
                    j += 1
            row.append("".join(out))
            i = j + 1
        elif text.startswith(("NULL", "null"), i):
            row.append(None)
            i += 4
        elif text.startswith(("0x", "0X"), i):
            m = re.match(r"0[xX]([0-9a-fA-F]*)", text[i:])
            row.append(bytes.fromhex(m.group(1)))  # type: ignore[union-attr]
            i += m.end()  # type: ignore[union-attr]
        else:
            m = _NUMBER.match(text, i)
            if not m:
                raise DataError(f"cannot parse value at offset {i} of a VALUES list: {text[i:i + 30]!r}")
            tok = m.group(0)
            row.append(int(tok) if re.fullmatch(r"[+-]?\d+", tok) else float(tok))
            i = m.end()
    if row is not None:
        raise DataError("unterminated row in a VALUES list")
    return rows


def parse_dump(text: str) -> dict[str, dict[str, Table]]:
    """{database: {table: Table}} in dump order; statements before any ``USE`` go to database ``main``."""
    dbs: dict[str, dict[str, Table]] = {}
    current = "main"
    for stmt in split_statements(text):
        head = stmt[:40].upper()
        if head.startswith("USE "):
            current = _ident(stmt[4:])[1:-1]
            dbs.setdefault(current, {})
        elif head.startswith("CREATE DATABASE") or head.startswith("CREATE SCHEMA"):
            m = re.search(r"(`(?:[^`]|``)+`|\w+)\s*$", stmt)
            dbs.setdefault(_ident(m.group(1))[1:-1], {})  # type: ignore[union-attr]
        elif head.startswith("CREATE TABLE"):
            name, ddl = convert_create_table(stmt)
            dbs.setdefault(current, {})[name] = Table(name, ddl)
        elif head.startswith(("INSERT INTO", "INSERT IGNORE INTO", "REPLACE INTO")):
            m = re.match(r"(?:INSERT(?:\s+IGNORE)?|REPLACE)\s+INTO\s+(`(?:[^`]|``)+`|\w+)\s*(\([^)]*\))?\s*VALUES\s*(.*)$",
                         stmt, re.IGNORECASE | re.DOTALL)
            if not m:
                raise DataError(f"cannot parse INSERT: {stmt[:120]!r}")
            name = _ident(m.group(1))[1:-1]
            table = dbs.get(current, {}).get(name)
            if table is None:
                raise DataError(f"INSERT into {current}.{name} before its CREATE TABLE")
            if m.group(2):
                raise DataError(f"INSERT with a column list into {current}.{name} is not supported")
            table.rows.extend(parse_values(m.group(3)))
        # DROP TABLE IF EXISTS, SET, LOCK/UNLOCK, GRANT, CREATE USER, FLUSH: no effect on the converted data
    return dbs


def write_sqlite(tables: dict[str, Table], path: str | Path) -> Path:
    """Write one database's tables to a fresh SQLite file at `path` (via a temp file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")  # dump order need not respect references
        for t in tables.values():
            conn.execute(t.ddl)
            if t.rows:
                marks = ", ".join("?" * len(t.rows[0]))
                conn.executemany(f'INSERT INTO "{t.name}" VALUES ({marks})', t.rows)
        conn.commit()
    finally:
        conn.close()
    tmp.replace(path)
    return path


def convert_dump(dump_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Every database of a mysqldump file as ``<out_dir>/<db>/<db>.sqlite`` (Spider's layout)."""
    text = Path(dump_path).read_text(encoding="utf-8")
    return {db: write_sqlite(tables, Path(out_dir) / db / f"{db}.sqlite") for db, tables in parse_dump(text).items()}
