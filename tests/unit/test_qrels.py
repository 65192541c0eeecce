"""The docstring -> function retrieval set: queries are docstrings, documents are docstring-free code."""

from __future__ import annotations

import textwrap

from dorag.data.ast_extract import extract_functions
from dorag.data.qrels import docstring_pairs, write_beir
from dorag.retrieval.metrics import read_qrels

SRC = textwrap.dedent('''
    def area(width, height):
        """Compute the area of a rectangle from its sides."""
        return width * height

    def perimeter(width, height):
        """Compute the perimeter of a rectangle from its sides."""
        return 2 * (width + height)

    def helper(x):
        y = x + 1
        return y

    class Box:
        @property
        def size(self):
            """The size of the box in litres."""
            return self._size

        @size.setter
        def size(self, value):
            self._size = value
            self.dirty = True
''')


def test_pairs_hide_the_docstring_and_judge_the_source_function(tmp_path):
    corpus, queries, qrels = docstring_pairs(extract_functions(SRC, "geo.py", "geo"), n_queries=2, n_docs=3)
    assert len(corpus) == 3 and len(queries) == 2
    full, _, _ = docstring_pairs(extract_functions(SRC, "geo.py", "geo"), n_queries=3, n_docs=10)
    assert len({d["id"] for d in full}) == len(full) == 4  # the setter shares the getter's name: one kept
    assert all('"""' not in d["text"] for d in corpus)
    by_id = {d["id"]: d for d in corpus}
    for q in queries:
        (doc_id, rel), = qrels[q["_id"]].items()
        assert rel == 1 and doc_id in by_id
        name = doc_id.split(":")[1]
        assert ("area" in q["text"]) == (name == "area")
    write_beir(tmp_path, corpus, queries, qrels)
    assert read_qrels(tmp_path / "qrels" / "test.tsv") == {k: {d: 1.0 for d in v} for k, v in qrels.items()}
