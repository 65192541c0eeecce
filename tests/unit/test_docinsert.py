from __future__ import annotations

import ast
import difflib
import textwrap

import pytest

from dorag.core.errors import DataError
from dorag.data.docinsert import clean_docstring, insert_docstrings, missing_docstrings, same_code
from dorag.experiments.docstring import document_path
from dorag.models.generator import Completion

SRC = textwrap.dedent('''\
    import os


    def documented(x):
        """Already has one."""
        return x


    def area(w,   h):  # odd spacing is kept
        return w * h


    class Shape:
        def scale(self, k):
            if k < 0:
                raise ValueError("negative")
            return k

        def _private(self):
            return 1


    def one(): return 1
    ''')


def test_finds_public_undocumented_functions_with_a_body_line():
    assert [t.qualname for t in missing_docstrings(SRC)] == ["area", "Shape.scale"]


def test_insertion_changes_only_docstrings_and_keeps_formatting():
    targets = missing_docstrings(SRC)
    docs = {t.lineno: f"Doc for {t.qualname}.\n\nArgs:\n    x: a value." for t in targets}
    new = insert_docstrings(SRC, docs, targets)
    assert same_code(SRC, new)
    ops = difflib.SequenceMatcher(None, SRC.splitlines(), new.splitlines(), autojunk=False).get_opcodes()
    assert {tag for tag, *_ in ops} == {"equal", "insert"}  # original lines untouched, only insertions
    assert ast.get_docstring(ast.parse(new).body[2]).startswith("Doc for area.")
    assert '        """Doc for Shape.scale.' in new


def test_clean_docstring_handles_fences_quotes_and_backslashes():
    assert clean_docstring('```python\n"""Sum two numbers."""\n```') == "Sum two numbers."
    assert clean_docstring('Path like C:\\temp and """quotes"""') == "quotes"
    assert clean_docstring("Plain text \\n here.") == "Plain text \\\\n here."


def test_hostile_model_output_cannot_break_the_code():
    targets = missing_docstrings(SRC)
    nasty = {t.lineno: '"""\nreturn 1\n\\' for t in targets}
    new = insert_docstrings(SRC, {k: clean_docstring(v) for k, v in nasty.items()}, targets)
    assert same_code(SRC, new)


class FakeGen:
    name = "fake"

    def generate(self, prompts, params, progress=None):
        return [[Completion("Compute the result.", 3, "eos")] for _ in prompts]


def test_document_path_diff_and_in_place(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    f = pkg / "m.py"
    f.write_text(SRC)
    changes = document_path(pkg, FakeGen())
    assert f.read_text() == SRC and changes[0].n_added == 2 and '+    """Compute the result."""' in changes[0].diff
    document_path(pkg, FakeGen(), in_place=True)
    assert same_code(SRC, f.read_text()) and f.read_text() != SRC
    assert document_path(pkg, FakeGen()) == []  # nothing left to document


def test_unparsable_file_is_a_clear_error():
    with pytest.raises(DataError, match="cannot parse"):
        missing_docstrings("def (:\n")
