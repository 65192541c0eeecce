"""Retrieval corpora as JSONL documents ``{"id", "text", "meta"}``, built from code or text sources.

Code is split by AST into functions and methods, each document carrying its signature, docstring,
imports and enclosing class, so a retrieved snippet reads on its own. Long documents are chunked on line
boundaries under a budget; exact duplicates (after whitespace normalisation) are dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.data.ast_extract import FunctionRecord, dedupe_key

Document = dict[str, Any]


def function_document(rec: FunctionRecord) -> Document:
    """One function as a self-contained document: imports, class header, then the code."""
    parts = []
    if rec.imports:
        parts.append("\n".join(rec.imports[:10]))
    if rec.class_context:
        parts.append(rec.class_context)
    parts.append(rec.code.rstrip())
    return {"id": rec.id, "text": "\n\n".join(parts) + "\n",
            "meta": {"path": rec.path, "module": rec.module, "qualname": rec.qualname, "lineno": rec.lineno,
                     "kind": "method" if rec.is_method else "function", "has_docstring": rec.docstring is not None}}


def chunk(doc: Document, max_units: int, count: Callable[[str], int] = lambda s: len(s.split())) -> list[Document]:
    """Split a document on line boundaries so each piece stays within `max_units` (words by default,
    or tokens with a tokenizer's length function). A single over-long line is kept whole."""
    if count(doc["text"]) <= max_units:
        return [doc]
    pieces, current, size = [], [], 0
    for line in doc["text"].splitlines(keepends=True):
        n = count(line)
        if current and size + n > max_units:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        pieces.append("".join(current))
    return [{"id": f"{doc['id']}#{i}", "text": text, "meta": {**doc.get("meta", {}), "chunk": i, "parent": doc["id"]}}
            for i, text in enumerate(pieces)]


def dedupe(docs: Iterable[Document]) -> Iterator[Document]:
    seen: set[str] = set()
    for d in docs:
        key = dedupe_key(d["text"])
        if key not in seen:
            seen.add(key)
            yield d


def from_functions(records: Iterable[FunctionRecord], max_units: int = 400) -> list[Document]:
    docs = (piece for rec in records for piece in chunk(function_document(rec), max_units))
    return list(dedupe(docs))


def from_table(path: str | Path) -> list[Document]:
    """Any JSONL or CSV with ``id`` and ``text`` columns (REPLUG's passage format); extra columns go to meta."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(enumerate(csv.DictReader(fh), start=2))
    else:
        rows = list(iter_jsonl_numbered(path))
    docs = []
    for line, row in rows:
        if not row.get("id") or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise DataError(f"{path}:{line}: a corpus row needs a non-empty id and text")
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {k: v for k, v in row.items() if k not in ("id", "text")}
        docs.append({"id": str(row["id"]), "text": row["text"], "meta": meta})
    if not docs:
        raise DataError(f"{path}: empty corpus")
    return docs
