"""Leakage check: find retrieval-corpus documents that hold a benchmark's solutions or its prompts.

A RAG score means nothing if the retriever can hand the model the answer. Three tests, each through an
inverted index (exact containment: no sampling error, unlike MinHash, and linear in the corpus size):

- **text**: the prompt, and the solution with its signature. A document is flagged when it holds at least
  `threshold` of that text's word n-grams, or the whole text verbatim after whitespace normalisation.
- **code**: the solution body as a stream of code tokens with every name that is not a keyword, a builtin or
  an attribute replaced by one placeholder, and layout and comments dropped. A document holding at least
  `code_threshold` of the body's `code_n`-grams of that stream is flagged, whatever its indentation, line
  wrapping, local names or surrounding markdown, and with or without the `def` line.
- **statements**: for bodies too short for n-grams (a one- or two-statement answer), the statements
  themselves, parsed and compared as ASTs with their names canonicalised. A code block of the document (a
  fenced block, the whole text, or each paragraph and line of text that is not code) whose function bodies
  or top-level statements *are* the solution's, or whose top level holds them among other statements (a
  pasted answer), is flagged. A generic body (no attribute or literal, under 8 nodes: `return x + y`,
  `return len(string)`) is flagged only as a whole snippet, since real code holds it as a function body (the
  stdlib's `operator.add`); inside a function among other statements, no solution is flagged.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dorag.data.decontam import tokens

_WS = re.compile(r"\s+")
_KEEP = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls"}
_CODE_TOKEN = re.compile(
    r"(\"\"\"[\s\S]*?\"\"\"|'\'\'[\s\S]*?'\'\'|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*')"  # strings
    r"|(#[^\n]*)"  # comments
    r"|([A-Za-z_][A-Za-z0-9_]*)|(\d[\w.]*)|([^\s\w])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[^\n]*\n(.*?)^[ \t]*(?:```|~~~)", re.MULTILINE | re.DOTALL)


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _signature(problem: dict[str, Any]) -> str:
    entry = problem.get("entry_point") or ""
    for line in problem.get("prompt", "").splitlines():
        if line.lstrip().startswith(f"def {entry}(") or (entry and f"def {entry}" in line):
            return line.strip()
    return ""


def code_tokens(text: str) -> list[str]:
    """Layout-free code tokens with names canonicalised: keywords, builtins, attribute names (after a dot),
    literals and operators stay; every other name becomes ID; comments are dropped."""
    out: list[str] = []
    prev = ""
    for m in _CODE_TOKEN.finditer(text):
        if m.group(2) is not None:
            continue
        raw = m.group(0)
        out.append("ID" if m.group(3) is not None and raw not in _KEEP and prev != "." else raw)
        prev = raw
    return out


class _Anonymise(ast.NodeTransformer):
    """Every name that is not a builtin becomes `_`; annotations go (a renamed copy is the same code)."""

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id not in _KEEP:
            node.id = "_"
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg, node.annotation = "_", None
        return node

    def visit_FunctionDef(self, node: ast.AST) -> ast.AST:
        node.name, node.returns = "_", None  # type: ignore[attr-defined]
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        node.name = "_"
        self.generic_visit(node)
        return node


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _dump(stmts: Sequence[ast.stmt]) -> tuple[str, ...]:
    return tuple(ast.dump(st, annotate_fields=False) for st in stmts)


def _specific(stmts: Sequence[ast.stmt]) -> bool:
    """Whether anonymised statements still say something: an attribute or a literal in them, or at least 8
    nodes. `return _ + _` (HumanEval/53) is `operator.add`'s body too; `return _.tally(_)` is not common code."""
    nodes = [n for st in stmts for n in ast.walk(st) if not isinstance(n, ast.expr_context)]
    return len(nodes) >= 8 or any(isinstance(n, (ast.Attribute, ast.Constant)) for n in nodes)


@dataclass(frozen=True)
class Unit:
    """A statement sequence of some code: AST dumps with names anonymised and as written."""

    anonymous: tuple[str, ...]
    exact: tuple[str, ...]
    top: bool  # the top level of the code (not a function body inside it)
    shape: tuple[str, ...]  # the statements' node types


Wanted = Callable[[tuple[str, ...], bool], bool]


def statement_units(code: str, wanted: Wanted | None = None) -> list[Unit]:
    """The statement sequences of a piece of code: its top level, and the body of every function in it
    (leading docstrings dropped). Empty if it does not parse. `wanted(shape, top)` picks the sequences worth
    dumping by their statements' node types (dumping is most of the cost of a scan)."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    bodies = [(tree.body, True)] + [(n.body, False) for n in ast.walk(tree)
                                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    picked = []
    for body, top in bodies:
        stmts = body[1:] if body and _is_docstring(body[0]) else body
        shape = tuple(type(st).__name__ for st in stmts)
        if stmts and (wanted is None or wanted(shape, top)):
            picked.append((stmts, top, shape))
    if not picked:
        return []
    exact = [_dump(stmts) for stmts, _, _ in picked]
    _Anonymise().visit(tree)
    return [Unit(_dump(stmts), ex, top, shape) for (stmts, top, shape), ex in zip(picked, exact)]


def code_blocks(text: str) -> list[tuple[str, bool]]:
    """Where a document may hold code, each with whether it is a whole block: its fenced blocks and the whole
    text (whole), and, when the text is not code, each paragraph and each line of it (not whole)."""
    blocks = [(m.group(1), True) for m in _FENCE.finditer(text)]
    blocks.append((text, True))
    try:
        ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        blocks += [(para, False) for para in re.split(r"\n\s*\n", text) if para.strip()]
        blocks += [(line, False) for line in text.splitlines() if line.strip()]
    return blocks


class LeakageChecker:
    """An inverted index from word n-grams to (problem, text kind); `scan(docs)` returns the findings."""

    def __init__(self, problems: Sequence[dict[str, Any]], n: int = 8, threshold: float = 0.5,
                 code_n: int = 12, code_threshold: float = 0.8) -> None:
        self.n, self.threshold = n, threshold
        self.code_n, self.code_threshold = code_n, code_threshold
        self.code_targets: list[tuple[str, int]] = []  # (task_id, code n-gram count)
        self.code_index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        # solution statements -> task ids, names anonymised and as written; and whether anonymised they say enough
        self.units: dict[tuple[str, ...], list[str]] = defaultdict(list)
        self.exact_units: dict[tuple[str, ...], list[str]] = defaultdict(list)
        self.specific: dict[str, bool] = {}
        self.sizes: set[int] = set()  # statement counts of the specific solutions
        self.shapes: set[tuple[str, ...]] = set()  # the solutions' statement node types
        self.window_shapes: set[tuple[str, ...]] = set()  # those of the specific ones
        # the words a solution keeps when anonymised (keywords, builtins, attribute names): a document that lacks
        # one cannot hold it, so most documents skip the parse
        self.words: dict[str, frozenset[str]] = {}
        self.targets: list[tuple[str, str, int, str]] = []  # (task_id, kind, n-gram count, normalised text)
        self.short: list[tuple[str, str, tuple[str, ...], str]] = []  # texts with fewer than n tokens
        self.index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for p in problems:
            solution = p.get("canonical_solution") or ""
            texts = []
            if solution.strip():
                sig = _signature(p)
                texts.append(("solution", f"{sig}\n{solution}" if sig and sig not in solution else solution))
            if p.get("prompt", "").strip():
                texts.append(("prompt", p["prompt"]))
            if solution.strip():
                self._add_code(p["task_id"], solution)
            for kind, text in texts:
                toks = tokens(text)
                if len(toks) < n:
                    if len(toks) >= 4:  # shorter still is too generic to call a leak
                        self.short.append((p["task_id"], kind, tuple(toks), _norm(text)))
                    continue
                grams = {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}
                t = len(self.targets)
                self.targets.append((p["task_id"], kind, len(grams), _norm(text)))
                for g in grams:
                    self.index[g].append(t)

    def _add_code(self, task_id: str, solution: str) -> None:
        toks = code_tokens(solution)
        if len(toks) >= 2 * self.code_n:  # shorter bodies are too generic for n-grams: the statement test takes them
            grams = {tuple(toks[i : i + self.code_n]) for i in range(len(toks) - self.code_n + 1)}
            self.code_targets.append((task_id, len(grams)))
            for g in grams:
                self.code_index[g].append(len(self.code_targets) - 1)
        units = statement_units(solution)
        self.words[task_id] = frozenset(t for t in toks if _WORD.fullmatch(t) and t != "ID")
        if units:
            self.units[units[0].anonymous].append(task_id)
            self.exact_units[units[0].exact].append(task_id)
            specific = _specific(ast.parse(textwrap.dedent(solution)).body)
            self.specific[task_id] = specific
            self.shapes.add(units[0].shape)
            if specific:
                self.window_shapes.add(units[0].shape)
                self.sizes.add(len(units[0].shape))

    def _wanted(self, shape: tuple[str, ...], top: bool) -> bool:
        if shape in self.shapes:
            return True
        return top and any(shape[i : i + k] in self.window_shapes for k in self.sizes if k < len(shape)
                           for i in range(len(shape) - k + 1))

    def check_code(self, text: str) -> list[dict[str, Any]]:
        """Findings of the code and statement tests for one document: [{task_id, kind, score, exact, test}]."""
        found: dict[str, dict[str, Any]] = {}
        for t, count in _hits(code_tokens(text), self.code_n, self.code_index).items():
            task_id, total = self.code_targets[t]
            if count / total >= self.code_threshold:
                found[task_id] = {"task_id": task_id, "kind": "solution", "score": round(count / total, 4),
                                  "exact": False, "test": "code"}
        words = set(_WORD.findall(text))
        candidates = {t for t, need in self.words.items() if need <= words}
        if self.units and candidates:
            for block, whole in code_blocks(text):
                for unit in statement_units(block, self._wanted):
                    # a generic body counts only where it is the whole snippet: `return x + y` (HumanEval/53) is
                    # also the body of the stdlib's operator.add and of an example in typing.ParamSpec's docstring
                    snippet = whole and unit.top
                    tasks = [t for t in self.units.get(unit.anonymous, ()) if snippet or self.specific[t]]
                    tasks += [t for t in self.exact_units.get(unit.exact, ()) if snippet or self.specific[t]]
                    if unit.top:  # free-standing statements among others at the top level (a pasted answer)
                        for k in (k for k in self.sizes if k < len(unit.anonymous)):
                            for i in range(len(unit.anonymous) - k + 1):
                                tasks += [t for t in self.units.get(unit.anonymous[i : i + k], ()) if self.specific[t]]
                    for task_id in (t for t in tasks if t in candidates):
                        found.setdefault(task_id, {"task_id": task_id, "kind": "solution", "score": 1.0,
                                                   "exact": False, "test": "statements"})
        return list(found.values())

    def check(self, text: str) -> list[dict[str, Any]]:
        """Findings for one document: [{task_id, kind, score, exact, test}]."""
        toks = tokens(text)
        hits = _hits(toks, self.n, self.index)
        found = []
        norm = None
        for t, count in hits.items():
            task_id, kind, total, target = self.targets[t]
            score = count / total
            if score >= self.threshold:
                norm = norm if norm is not None else _norm(text)
                found.append({"task_id": task_id, "kind": kind, "score": round(score, 4), "exact": target in norm,
                              "test": "text"})
        if self.short:
            joined = " " + " ".join(toks) + " "
            for task_id, kind, seq, target in self.short:
                if " " + " ".join(seq) + " " in joined:
                    found.append({"task_id": task_id, "kind": kind, "score": 1.0, "exact": target in _norm(text),
                                  "test": "text"})
        solved = {f["task_id"] for f in found if f["kind"] == "solution"}
        found += [f for f in self.check_code(text) if f["task_id"] not in solved]
        return found

    def scan(self, docs: Sequence[dict[str, Any]], on_progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Every (document, problem) pair over the threshold, with a reason, best matches first."""
        findings = []
        for i, d in enumerate(docs):
            for f in self.check(d["text"]):
                reason = _reason(f, self.n, self.code_n)
                findings.append({"doc_id": d["id"], **f, "reason": reason})
            if on_progress and (i + 1) % 1000 == 0:
                on_progress(i + 1, len(docs))
        if on_progress:
            on_progress(len(docs), len(docs))
        findings.sort(key=lambda f: (-f["score"], f["doc_id"], f["task_id"]))
        return findings


def _hits(toks: Sequence[str], n: int, index: dict[tuple[str, ...], list[int]]) -> dict[int, int]:
    """How many distinct n-grams of `toks` each indexed target shares."""
    hits: dict[int, int] = defaultdict(int)
    for g in {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}:
        for t in index.get(g, ()):
            hits[t] += 1
    return hits


def _reason(f: dict[str, Any], n: int, code_n: int) -> str:
    if f["test"] == "statements":
        return "solution (its statements, names canonicalised)"
    if f["test"] == "code":
        return f"solution ({f['score']:.0%} of its code {code_n}-grams, names canonicalised)"
    return f"{'verbatim ' if f['exact'] else ''}{f['kind']} ({f['score']:.0%} of its {n}-grams)"


def drop_leaking(docs: Sequence[dict[str, Any]], findings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The corpus without the flagged documents."""
    bad = {f["doc_id"] for f in findings}
    return [d for d in docs if d["id"] not in bad]
