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
    # the method sits under its class header; `import os` is dropped because the method does not use it
    assert get["text"].startswith("class Store:\n    \"\"\"Keeps values.\"\"\"\n    def get(self, key):\n")
    assert get["text"].endswith("        return self.data[key]\n")
    assert get["meta"]["kind"] == "method" and get["meta"]["has_docstring"] and get["meta"]["lineno"] == 7


def test_only_the_imports_a_function_uses_are_kept():
    from dorag.data.corpus import used_imports

    imports = ["import os", "import numpy as np, sys", "from .util import a, b as bee", "from x import (y)"]
    code = "def f():\n    return np.zeros(3), bee(os.sep)\n"
    assert used_imports(imports, code) == ["import os", "import numpy as np", "from .util import b as bee"]


def test_chunking_respects_the_budget_on_line_boundaries():
    doc = {"id": "d", "text": "".join(f"line {i} a b c\n" for i in range(10)), "meta": {}}
    pieces = chunk(doc, max_units=12)
    assert [p["id"] for p in pieces] == ["d#0", "d#1", "d#2", "d#3", "d#4"]
    assert "".join(p["text"] for p in pieces) == doc["text"]
    assert all(len(p["text"].split()) <= 12 for p in pieces) and pieces[1]["meta"]["parent"] == "d"
    assert chunk(doc, max_units=1000) == [doc]


def test_code_chunks_repeat_the_header_and_cut_between_statements():
    body = []
    for i in range(12):
        body += [f"    if x == {i}:", f"        total = call_{i}(", "            a,", "            b,", "        )"]
    text = "import os\n\ndef big(x):\n" + "\n".join(body) + "\n    return total\n"
    pieces = chunk({"id": "m:big", "text": text, "meta": {}}, max_units=40)
    assert len(pieces) > 2
    for i, p in enumerate(pieces):
        assert len(p["text"].split()) <= 40
        lines = p["text"].splitlines()
        assert lines[:3] == ["import os", "", "def big(x):"]
        if i:
            assert lines[3] == "    # ..." and lines[4].startswith("    if x ==")  # starts at a statement
    rebuilt = pieces[0]["text"] + "".join(p["text"].split("    # ...\n", 1)[1] for p in pieces[1:])
    assert rebuilt == text


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


def test_class_documents_summarise_the_api():
    from dorag.data.corpus import class_documents

    docs = class_documents(SRC, "store.py", "store")
    assert [d["id"] for d in docs] == ["store:Store"]
    text = docs[0]["text"]
    assert text.startswith("class Store:") and "Keeps values." in text
    assert "def get(self, key):" in text and "Return the value for key." in text
    assert "self.data[key]" not in text  # signatures, not bodies
    assert docs[0]["meta"]["kind"] == "class"


def test_from_code_has_functions_methods_and_classes_with_unique_ids(tmp_path):
    from dorag.data.corpus import from_code

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "store.py").write_text(SRC + textwrap.dedent('''
        class Prop:
            @property
            def value(self):
                return self._v

            @value.setter
            def value(self, v):
                self._v = v
    '''))
    docs = from_code(pkg)
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids))
    assert {"store:Store", "store:Store.get", "store:Prop"} <= set(ids)
    assert sum(i.startswith("store:Prop.value") for i in ids) == 2  # getter and setter both kept


def test_apidoc_documents_come_from_inspect():
    from dorag.data.corpus import from_apidoc

    docs = {d["id"]: d for d in from_apidoc("json")}
    assert "apidoc:json.dumps" in docs and "apidoc:json.decoder.JSONDecoder" in docs  # where it is defined
    assert docs["apidoc:json.dumps"]["text"].startswith("json.dumps(obj, *, skipkeys=False")
    with pytest.raises(DataError, match="cannot import 'no_such_pkg_xyz'"):
        from_apidoc("no_such_pkg_xyz")


def test_codesearchnet_official_jsonl_gz(tmp_path):
    from pathlib import Path

    from dorag.data.corpus import build_corpus, from_codesearchnet

    root = Path(__file__).parents[1] / "fixtures" / "codesearchnet"
    docs = from_codesearchnet(str(root))
    assert len(docs) == 3 and docs[0]["id"].startswith("https://github.com/example/toolkit/blob/")
    assert docs[0]["text"].startswith("def parse_int(s):") and docs[0]["meta"]["func_name"] == "parse_int"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"repo": "x", "func_name": "f"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: a CodeSearchNet row needs"):
        from_codesearchnet(str(bad))
    with pytest.raises(DataError, match="not found or not recognised"):
        build_corpus([str(tmp_path / "nope")])
    assert len(build_corpus([f"codesearchnet:{root}", f"codesearchnet:{root}"])) == 3  # deduplicated
