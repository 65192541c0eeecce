"""Candidate (query, positive) pairs from Python functions: the texts of a function, the relations
mined from its AST, and the prompts that have an LLM write a query instead. Filtering, roles and
deduplication happen in `dorag.data.synth`."""

from __future__ import annotations

import ast
import dataclasses
import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from dorag.data.ast_extract import FunctionRecord
from dorag.data.corpus import function_document

CATEGORIES = ("text2code", "code2text", "code2code", "hybrid")
_GAP = re.compile(r"(:[ \t]*(?:#[^\n]*)?\n)(?:[ \t]*\n)+")  # a header line, then blank lines


@dataclass
class Candidate:
    """A pair before filtering; an llm candidate's `fill` side is empty until the model writes it."""

    category: str
    relation: str
    query_rec: FunctionRecord
    pos_rec: FunctionRecord
    query: str
    positive: str
    pos_kind: str  # code | body | summary: which text of pos_rec the positive is
    prompt: str | None = None
    fill: Literal["", "query", "positive"] = ""


# ---------------------------------------------------------------- text units of a function

def summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line, doctest examples cut."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip() or line.lstrip().startswith(">>>"):
            break
        lines.append(line.strip())
    return " ".join(lines)


def without_docstring(rec: FunctionRecord) -> str:
    """The function's code without its docstring or the blank lines it leaves under the header."""
    return _GAP.sub(r"\1", rec.code_without_docstring, count=1)


def code_document(rec: FunctionRecord) -> str:
    """The function without its docstring, with the imports it uses and its class header (corpus format)."""
    return function_document(dataclasses.replace(rec, code=without_docstring(rec)))["text"]


def body(rec: FunctionRecord) -> str:
    """The statements after the signature and docstring, dedented; '' for a one-line function."""
    try:
        node = ast.parse(rec.code_without_docstring).body[0]
    except (SyntaxError, IndexError):
        return ""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.body[0].lineno == node.lineno:
        return ""
    lines = rec.code_without_docstring.splitlines()[node.body[0].lineno - 1 :]
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def call_sites(rec: FunctionRecord) -> Iterator[tuple[str, str]]:
    """(callee key, calling statement) for each call of a plain name or of ``self.x``/``cls.x``."""
    try:
        tree = ast.parse(rec.code)
    except SyntaxError:
        return
    fn = tree.body[0] if tree.body else None
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return
    lines = rec.code.splitlines()
    cls = rec.qualname.rsplit(".", 1)[0] + "." if rec.is_method else None
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call) or node.lineno < fn.body[0].lineno or node.lineno == fn.lineno:
            continue  # calls in decorators, defaults or on the `def` line are not call sites in the body
        f = node.func
        if isinstance(f, ast.Name):
            key = f.id
        elif cls and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("self", "cls"):
            key = cls + f.attr
        else:
            continue
        stmt = textwrap.dedent("\n".join(lines[node.lineno - 1 : min(node.end_lineno or node.lineno, node.lineno + 2)]))
        yield key, stmt.strip()


# ---------------------------------------------------------------- candidates

def mined_candidates(records: Sequence[FunctionRecord], category: str) -> list[Candidate]:
    """Every mined pair of one category (before filtering)."""
    out: list[Candidate] = []
    if category == "code2code":
        by_key = {(r.module, r.qualname): r for r in records}
        for rec in records:
            seen = set()
            for key, stmt in call_sites(rec):
                callee = by_key.get((rec.module, key))
                if callee is None or callee.id == rec.id or callee.id in seen:
                    continue
                seen.add(callee.id)
                query = f"{rec.signature}\n    ...\n{textwrap.indent(stmt, '    ')}"
                out.append(Candidate(category, "callsite->definition", rec, callee, query, code_document(callee), "code"))
            if rec.signature.count(",") >= 2:  # a signature with a few parameters says enough to find the body
                out.append(Candidate(category, "signature->body", rec, rec, rec.signature, body(rec), "body"))
        return out
    for rec in records:
        if not rec.docstring:
            continue  # trivial docstrings are dropped (and counted) by the filters
        text = summary(rec.docstring)
        if category == "text2code":
            out.append(Candidate(category, "docstring->code", rec, rec, text, code_document(rec), "code"))
        elif category == "code2text":
            out.append(Candidate(category, "code->docstring", rec, rec, without_docstring(rec), text, "summary"))
        elif category == "hybrid":
            out.append(Candidate(category, "docstring+signature->body", rec, rec, f"{text}\n{rec.signature}",
                                 body(rec), "body"))
    return out


LLM_PROMPTS = {
    "text2code": "Write the one-sentence request a developer would type into a code search engine to find the "
                 "Python function below. Say what it does; do not name it or copy its code.\n\n```python\n{code}```",
    "code2text": "Write a one-sentence docstring summary of the Python function below.\n\n```python\n{code}```",
    "code2code": "Write two to four lines of Python that call the function below the way a user of it would. "
                 "Reply with the code only.\n\n```python\n{code}```",
    "hybrid": "Write the one-sentence request a developer would type to ask for a Python function with the "
              "signature below that does what the function does. Do not copy its code.\n\n```python\n{code}```",
}


def llm_candidates(records: Sequence[FunctionRecord], category: str) -> list[Candidate]:
    """One prompt per function: the model writes the query (for code2text, the summary)."""
    out = []
    for rec in records:
        prompt = LLM_PROMPTS[category].format(code=without_docstring(rec))
        if category == "code2text":
            out.append(Candidate(category, "code->llm-summary", rec, rec, without_docstring(rec), "", "summary",
                                 prompt, "positive"))
        elif category == "hybrid":
            out.append(Candidate(category, "llm-request+signature->body", rec, rec, "", body(rec), "body", prompt, "query"))
        else:
            relation = "llm-request->code" if category == "text2code" else "llm-usage->definition"
            out.append(Candidate(category, relation, rec, rec, "", code_document(rec), "code", prompt, "query"))
    return out


def clean_llm(text: str, code: bool) -> str:
    """The model's answer without fences, labels or quotes: a code snippet, or its first paragraph."""
    fenced = re.search(r"```[a-zA-Z]*\n(.*?)(```|$)", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    if code:
        return "\n".join(text.strip("\n").splitlines()[:6]).strip()
    first = text.strip().split("\n\n")[0]
    first = re.sub(r"^(query|request|summary|docstring)\s*:\s*", "", " ".join(first.split()), flags=re.IGNORECASE)
    return first.strip(" \"'`")
