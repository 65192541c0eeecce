from __future__ import annotations

import json
import textwrap

import pytest

from dorag.core.errors import DataError
from dorag.data.ast_extract import extract_functions
from dorag.data.corpus import chunk, dedupe, from_functions, from_table

SRC = textwrap.dedent('''
    import os

    class Store:
        """Keeps values."""

        def get(self, key):
            """Return the value for key."""
            return self.data[key]

    def twice(x):
        return 2 * x

    def twice_again(x):
        return 2 * x
''')


def test_function_documents_carry_context_and_meta():
    docs = from_functions(extract_functions(SRC, "m.py", "m"))
    by_id = {d["id"]: d for d in docs}
    get = by_id["m:Store.get"]
    assert get["text"].startswith("import os\n\nclass Store:\n    \"\"\"Keeps values.\"\"\"\n\ndef get(self, key):")
    assert get["meta"]["kind"] == "method" and get["meta"]["has_docstring"] and get["meta"]["lineno"] == 7


def test_chunking_respects_the_budget_on_line_boundaries():
    doc = {"id": "d", "text": "".join(f"line {i} a b c\n" for i in range(10)), "meta": {}}
    pieces = chunk(doc, max_units=12)
    assert [p["id"] for p in pieces] == ["d#0", "d#1", "d#2", "d#3", "d#4"]
    assert "".join(p["text"] for p in pieces) == doc["text"]
    assert all(len(p["text"].split()) <= 12 for p in pieces) and pieces[1]["meta"]["parent"] == "d"
    assert chunk(doc, max_units=1000) == [doc]


def test_dedupe_drops_whitespace_variants():
    docs = [{"id": "a", "text": "x  = 1"}, {"id": "b", "text": "x = 1"}, {"id": "c", "text": "y = 2"}]
    assert [d["id"] for d in dedupe(docs)] == ["a", "c"]


def test_table_corpus_jsonl_and_csv(tmp_path):
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"id": 1, "text": "alpha", "title": "A"}) + "\n")
    assert from_table(j) == [{"id": "1", "text": "alpha", "meta": {"title": "A"}}]
    c = tmp_path / "c.csv"
    c.write_text("id,text,source\np1,beta gamma,wiki\n")
    assert from_table(c)[0] == {"id": "p1", "text": "beta gamma", "meta": {"source": "wiki"}}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\np1,\n")
    with pytest.raises(DataError, match="bad.csv:2: a corpus row needs a non-empty id and text"):
        from_table(bad)
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty corpus"):
        from_table(empty)
