"""Self-generated, execution-verified training problems: the pure logic (prompts, parsing, selection, records).

The writer model sees one seed function from real code and writes a new HumanEval-style problem stub
inspired by it (OSS-Instruct, arXiv 2312.02120 sec. 2; Self-OSS-Instruct in StarCoder2-Instruct). It then
answers the problem through the benchmark's own prompt, several times, and, in a separate conversation
that never shows a solution, writes assert tests. Solutions and tests are matched by execution and the
CodeT dual-agreement rule picks the solution (arXiv 2207.10397 sec. 2.2); only verified answers are kept
(rejection sampling, STaR arXiv 2203.14465 sec. 3.1). Each step asks for one small thing in a format the
model follows, because one prompt for problem + solution + tests gave no parseable triple from a 0.5B model.

Nothing here runs a model or untrusted code; `dorag.experiments.selfgen` wires this to a generator and the
sandbox.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import hashlib
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dorag.core.types import Prompt
from dorag.data.ast_extract import FunctionRecord, dedupe_key, is_useful_docstring
from dorag.data.postprocess import extract_code

# -------------------------------------------------------------------------------------------- seeds

# Seeds that touch the outside world make problems whose tests cannot run in a sandbox.
_IMPURE = re.compile(r"\b(open|print|input|exec|eval|compile|__import__|getattr|setattr)\s*\(|\b(os|sys|subprocess|"
                     r"socket|threading|signal|shutil|tempfile|select|time|asyncio|ctypes|_thread|io)\.|\byield\b|"
                     r"\bglobal\b|\bnonlocal\b|\bawait\b|\bwarnings\.")
_EXCLUDED_MODULES = re.compile(r"(^|\.)(tkinter|turtle|curses|idlelib|unittest|test|tests|multiprocessing|asyncio|"
                               r"concurrent|ctypes|zorbel|unseen_api|distutils|lib2to3|pydoc|pdb|bdb|socket|ssl|"
                               r"subprocess|threading|logging|xmlrpc|ftplib|imaplib|smtplib|poplib|nntplib|telnetlib|"
                               r"importlib|sysconfig|site|platform|tty|pty|shutil|tempfile|os|sys|venv|ensurepip|"
                               r"pickletools|pickle|dis|trace|tracemalloc|cProfile|profile|pstats)(\.|$)")
# Modules of pure computation: a seed may call them (math.gcd, re.sub), and their methods make good seeds.
PURE_MODULES = frozenset({"math", "cmath", "re", "string", "itertools", "functools", "operator", "collections",
                          "heapq", "bisect", "statistics", "fractions", "decimal", "_pydecimal", "textwrap",
                          "unicodedata", "colorsys", "calendar", "datetime", "base64", "binascii", "struct",
                          "keyword", "difflib", "fnmatch", "posixpath", "ntpath", "genericpath", "html", "json",
                          "copy", "random", "shlex", "csv", "urllib", "ipaddress", "email", "graphlib", "numbers",
                          "pprint", "reprlib", "tokenize", "encodings", "gettext", "locale", "configparser",
                          "getopt", "optparse", "argparse", "tomllib", "plistlib", "quopri", "uu", "stringprep",
                          "hmac", "hashlib", "nturl2path", "_strptime", "sre_parse", "sre_compile", "zlib"})
_PURE_BUILTINS = frozenset(dir(builtins)) - {"open", "print", "input", "exec", "eval", "compile", "__import__",
                                             "globals", "locals", "vars", "breakpoint", "exit", "quit", "help"}


def _free_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names the function reads but neither binds nor receives: its dependencies on its module."""
    bound: set[str] = set()
    loads: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            (loads if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not fn:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return loads - bound


def seed_tier(rec: FunctionRecord, max_lines: int = 40) -> int | None:
    """How good a seed `rec` is (0 best), or None for a function no problem should grow from.

    Every seed is a small function with some logic (a loop, a comprehension or a branch) and no I/O, in
    a public module that is neither a benchmark (zorbel, the unseen-API library, never qualifies) nor
    tooling. Tier 0: a documented, self-contained, module-level function (it reads only builtins and pure
    modules); tier 1: any such function or method of a module of pure computation (`PURE_MODULES`);
    tier 2: the rest.
    """
    top = rec.module.split(".")[0]
    if rec.name.startswith("__") or _EXCLUDED_MODULES.search(rec.module) or "zorbel" in rec.path \
            or "unseen_api" in rec.path or (top.startswith("_") and top not in PURE_MODULES):
        return None
    if not 4 <= rec.code.count("\n") <= max_lines or _IMPURE.search(rec.code_without_docstring):
        return None
    try:
        fn = ast.parse(rec.code).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or isinstance(fn, ast.AsyncFunctionDef):
        return None
    if not any(isinstance(n, (ast.For, ast.While, ast.If, ast.IfExp, ast.comprehension)) for n in ast.walk(fn)):
        return None
    documented = is_useful_docstring(rec.docstring, rec.name)
    if documented and not rec.is_method and not rec.name.startswith("_") and not fn.decorator_list \
            and _free_names(fn) <= _PURE_BUILTINS | PURE_MODULES:
        return 0
    return 1 if top in PURE_MODULES else 2


def select_seeds(records: Iterable[FunctionRecord], n: int, seed: int, max_lines: int = 40) -> list[FunctionRecord]:
    """The first `n` seeds by tier, in a seeded hash order within a tier, one per distinct body.

    The order does not depend on `n`, so a larger run extends a smaller one with the same seeds first.
    """
    pool: dict[str, tuple[int, FunctionRecord]] = {}
    for rec in records:
        tier = seed_tier(rec, max_lines)
        if tier is not None:
            pool.setdefault(dedupe_key(rec.code_without_docstring), (tier, rec))
    ranked = sorted(pool.values(), key=lambda tr: (tr[0], _hash(f"{seed}:{tr[1].id}"), tr[1].id))
    return [rec for _, rec in ranked[:n]]


def _hash(text: str, n: int = 16) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def bucket(text: str) -> float:
    """A stable number in [0, 1) for a seeded split."""
    return int(_hash(text, 8), 16) / 2**32


# ------------------------------------------------------------------------------------------ prompts

PROBLEM_INSTRUCTION = (
    "Write one new, self-contained Python programming exercise inspired by it, in the style of HumanEval. "
    "Give only the stub: the imports it needs, one function signature with type hints, and a docstring that "
    "states the task precisely and shows one or two examples as `>>>` lines with their expected output. "
    "Do not implement it: the body is `...`. Use only the standard library."
)
PROBLEM_PREFIX = "```python\n"

# Few-shot turns (seed -> stub), written for this module; neither is a benchmark problem.
FEWSHOT: tuple[tuple[tuple[str, str], str], ...] = (
    (("genericpath", 'def commonprefix(m):\n    "Given a list of pathnames, returns the longest common leading component"\n'
     "    if not m: return ''\n    s1 = min(m)\n    s2 = max(m)\n    for i, c in enumerate(s1):\n"
     "        if c != s2[i]:\n            return s1[:i]\n    return s1\n"),
     "from typing import List\n\n\ndef shared_suffix_length(words: List[str]) -> int:\n"
     '    """Return the length of the longest suffix that every word in `words` ends with.\n'
     "    >>> shared_suffix_length(['running', 'jumping', 'swimming'])\n    3\n"
     "    >>> shared_suffix_length(['cat', 'dog'])\n    0\n"
     '    """\n    ...\n'),
    (("html", 'def escape(s, quote=True):\n    """Replace special characters "&", "<" and ">" to HTML-safe sequences."""\n'
     '    s = s.replace("&", "&amp;")\n    s = s.replace("<", "&lt;")\n    s = s.replace(">", "&gt;")\n'
     "    return s\n"),
     "def count_markup_chars(text: str) -> dict:\n"
     "    \"\"\"Count how often each of the characters '&', '<' and '>' occurs in `text`.\n"
     "    >>> count_markup_chars('a < b && c')\n    {'<': 1, '&': 2}\n"
     "    >>> count_markup_chars('plain')\n    {}\n"
     '    """\n    ...\n'),
)
FEWSHOT_NAMES = ("shared_suffix_length", "count_markup_chars")

TESTS_INSTRUCTION = (
    "Write a `check(candidate)` function with {n} assert statements that call `candidate` (this function) on "
    "concrete inputs and compare the result with the exact expected value. Cover the docstring's examples "
    "and a few edge cases."
)
TESTS_PREFIX = "```python\ndef check(candidate):\n    assert candidate("


def seed_code(rec: FunctionRecord, max_lines: int = 40) -> str:
    return "\n".join(rec.code.splitlines()[:max_lines]) + "\n"


def seed_summary(code: str, module: str) -> str | None:
    """`module.name(args)`: and the docstring's first paragraph, or None for an undocumented function."""
    try:
        fn = ast.parse(code).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    doc = ast.get_docstring(fn) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if not doc:
        return None
    first = " ".join(doc.split("\n\n")[0].split())[:400]
    return f"`{module}.{fn.name}({ast.unparse(fn.args)})`: {first}"  # type: ignore[union-attr]


def _seed_user(code: str, module: str, view: str) -> str:
    summary = seed_summary(code, module) if view == "summary" else None
    if summary:
        return f"Here is what a function in the Python standard library does:\n{summary}\n\n{PROBLEM_INSTRUCTION}"
    return f"Here is a function from the Python standard library:\n```python\n{code.rstrip()}\n```\n\n{PROBLEM_INSTRUCTION}"


SEED_VIEWS = ("code", "summary")


def problem_prompt(rec: FunctionRecord, fewshot: int = 1, max_lines: int = 40, view: str = "code") -> Prompt:
    """A chat asking for one problem stub inspired by `rec`, after `fewshot` worked examples.

    `view` "code" shows the seed's source (OSS-Instruct); "summary" only its signature and the first
    paragraph of its docstring, which a small model cannot copy into its answer as easily.
    """
    messages: list[tuple[str, str]] = []
    for (module, code), stub in FEWSHOT[:fewshot]:
        messages += [("user", _seed_user(code, module, view)), ("assistant", f"```python\n{stub}```")]
    messages.append(("user", _seed_user(seed_code(rec, max_lines), rec.module, view)))
    return Prompt(messages=tuple(messages), response_prefix=PROBLEM_PREFIX)


def tests_prompt(problem_text: str, n_tests: int = 6) -> Prompt:
    """A chat asking for asserts on the problem stub alone (the model sees no solution)."""
    user = f"Here is a Python function stub:\n```python\n{problem_text.rstrip()}\n```\n\n{TESTS_INSTRUCTION.format(n=n_tests)}"
    return Prompt(messages=(("user", user),), response_prefix=TESTS_PREFIX)


# ---------------------------------------------------------------------------------------- problems


@dataclass
class ParsedProblem:
    prompt: str  # HumanEval form: imports, signature and docstring, ending with a newline
    entry_point: str
    docstring: str
    n_examples: int  # >>> lines in the docstring


_STUB = (ast.Pass,)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"typing", "__future__"}


def _is_stub(stmt: ast.stmt) -> bool:
    if isinstance(stmt, _STUB):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis:
        return True
    return isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt)


def _is_demo(node: ast.stmt) -> bool:
    """Example code after the stub (prints, calls, a main guard) that the problem can do without."""
    if isinstance(node, ast.Expr):
        return True
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__")


def parse_problem(text: str, seen_names: set[str] | frozenset[str] = frozenset(), min_words: int = 6,
                  require_examples: bool = True) -> ParsedProblem | str:
    """The problem stub in a model's answer, normalised to HumanEval prompt form, or why it was rejected.

    Accepted: imports (standard library only) and exactly one top-level function with a real docstring and
    a stub body (`...`, `pass`, `raise NotImplementedError`), at least one parameter, a new name. Demo
    calls after the function are dropped; any other top-level code rejects the answer.
    """
    code = extract_code(text)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "syntax"
    imports: list[ast.stmt] = []
    funcs: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            funcs.append(node)
        elif not _is_demo(node):
            return "extra code"
    if not funcs:
        return "no function"
    if len(funcs) > 1:
        return "several definitions"
    fn = funcs[0]
    if not isinstance(fn, ast.FunctionDef) or fn.decorator_list:
        return "not a plain function"
    for imp in imports:
        mods = [a.name for a in imp.names] if isinstance(imp, ast.Import) else [imp.module or ""]
        if any(m.split(".")[0] not in _STDLIB for m in mods):
            return "non-stdlib import"
    doc = ast.get_docstring(fn)
    if not doc:
        return "no docstring"
    body = fn.body[1:]
    if body and not all(_is_stub(s) for s in body):
        return "has a body"
    all_args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
    if not all_args and not fn.args.vararg:
        return "no parameters"
    name = fn.name.lstrip("_")
    if len(name) < 3:
        return "trivial name"
    if name in seen_names:
        return "duplicate name"
    n_examples = doc.count(">>>")
    description = " ".join(line for line in doc.splitlines() if not line.strip().startswith(">>>"))
    if len(re.findall(r"[A-Za-z]{2,}", description)) < min_words:
        return "trivial docstring"
    if require_examples and not n_examples:
        return "no examples"
    lines = code.splitlines()
    head = "".join(ast.get_source_segment(code, i) + "\n" for i in imports)  # type: ignore[operator]
    stub = "\n".join(lines[fn.lineno - 1 : fn.body[0].end_lineno]) + "\n"
    prompt = (head + "\n\n" if head else "") + stub
    if name != fn.name:  # a private stdlib seed's name (`_splitext`) copied by the writer: the task is public
        prompt = re.sub(rf"(?<![\w.]){re.escape(fn.name)}\b", name, prompt)
        doc = re.sub(rf"(?<![\w.]){re.escape(fn.name)}\b", name, doc)
    try:
        ast.parse(prompt)
    except SyntaxError:
        return "syntax"
    return ParsedProblem(prompt, name, doc, n_examples)


# Problem writing stops where the docstring closes, so the model cannot go on to write a body: a 0.5B
# model writes one after the docstring in most answers, whatever the instruction says (measured in
# docs/training-data.md). `close_docstring` puts the closing quotes back.
PROBLEM_STOPS: tuple[str, ...] = ('"""\n', "'''\n", "\n```")


def close_docstring(text: str) -> str:
    """`text` with the docstring quotes that a stop sequence cut off closed again."""
    for quote in ('"""', "'''"):
        if text.count(quote) % 2 == 1:
            return text + quote + "\n"
    return text


def cut_runaway(text: str) -> str | None:
    """A problem that hit the token cap inside its docstring (a runaway list of examples), cut after its last
    complete example (a `>>>` line and its output line) and closed; None when no example is complete."""
    lines = text.split("\n")[:-1]  # the last line may be cut mid-token
    for i in range(len(lines) - 2, -1, -1):
        call, out = lines[i].strip(), lines[i + 1].strip()
        if call.startswith(">>>") and out and not out.startswith((">>>", "...")):
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            return close_docstring("\n".join(lines[: i + 2]) + "\n" + indent)
    return None


def signature_key(prompt: str, entry_point: str) -> tuple[str, str] | None:
    """(name, unparsed arguments) of the entry point: what an exact signature match compares."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            return node.name, ast.unparse(node.args)
    return None


# ------------------------------------------------------------------------------------------- tests


class _ToCandidate(ast.NodeTransformer):
    def __init__(self, entry_point: str) -> None:
        self.entry_point = entry_point

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name("candidate", node.ctx), node) if node.id == self.entry_point else node


def _calls_candidate(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "candidate"
               for n in ast.walk(node))


def _normalise_assert(node: ast.Assert, entry_point: str) -> str | None:
    """The assert calling `candidate`, without its message (so 'Test case 1 failed' copies compare equal)."""
    node = _ToCandidate(entry_point).visit(node)
    node.msg = None
    return ast.unparse(node) if _calls_candidate(node.test) else None


def _parse_prefix(code: str) -> ast.Module | None:
    lines = code.split("\n")
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError):
            continue
    return None


def parse_tests(text: str, entry_point: str, max_tests: int = 10) -> list[str]:
    """Assert statements from a model's `check(candidate)` answer, one per test, each calling the function.

    Calls by the function's own name become calls of `candidate`; a truncated tail is cut back to what
    parses; duplicates and asserts that do not call the function are dropped.
    """
    code = extract_code(text)
    tree = _parse_prefix(code)
    if tree is None:
        return []
    stmts: list[ast.stmt] = []
    for node in tree.body:
        stmts += node.body if isinstance(node, ast.FunctionDef) and node.name == "check" else [node]
    out: list[str] = []
    for stmt in stmts:
        if isinstance(stmt, ast.Assert):
            src = _normalise_assert(stmt, entry_point)
            if src and src not in out:
                out.append(src)
    return out[:max_tests]


def _doctest_examples(docstring: str) -> list[doctest.Example]:
    try:
        return doctest.DocTestParser().get_examples(docstring)
    except ValueError:
        return []


def doctest_asserts(docstring: str, entry_point: str) -> list[str]:
    """The docstring's ``>>>`` examples as asserts, where the expected output is a Python literal."""
    out: list[str] = []
    for ex in _doctest_examples(docstring):
        want = ex.want.strip()
        try:
            call = ast.parse(ex.source.strip(), mode="eval").body
            ast.literal_eval(want)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue
        test = f"assert {ast.unparse(call)} is None" if want == "None" else f"assert {ast.unparse(call)} == {want}"
        src = _normalise_assert(ast.parse(test).body[0], entry_point)  # type: ignore[arg-type]
        if src and src not in out:
            out.append(src)
    return out


def check_code(asserts: Sequence[str]) -> str:
    """HumanEval's test form: ``def check(candidate):`` with one assert a line."""
    return "def check(candidate):\n" + "".join(f"    {a}\n" for a in asserts)


# ------------------------------------------------------------------------- outputs from execution
# The 0.5B writer's expected values are mostly wrong (base64 of b'hello' made up, `candidate(1, 1) == 1` for a
# string function): in the first 160 stdlib seeds, 39 of 84 clean problems had every solution fail every
# test. Its *inputs* and its solutions are better than its arithmetic. So `expected: executed` keeps the
# inputs of its tests and examples, runs every sampled solution on them, and takes the outputs of the largest
# group of samples that agree on all of them (clustering by execution, as AlphaCode does, and MBR-exec,
# arXiv 2204.11454); the docstring's examples and the tests are then rewritten with those outputs.


def expected_of(test: str) -> str | None:
    """The expected value of `assert candidate(...) == x` as source ('None' for `is None`)."""
    try:
        node = ast.parse(test).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not isinstance(node, ast.Assert) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return None
    if isinstance(node.test.ops[0], ast.Is) and ast.unparse(node.test.comparators[0]) == "None":
        return "None"
    return ast.unparse(node.test.comparators[0]) if isinstance(node.test.ops[0], ast.Eq) else None


def _same_literal(a: str, b: str) -> bool:
    try:
        return bool(ast.literal_eval(a) == ast.literal_eval(b))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def call_of(test: str) -> str | None:
    """`candidate(...)` of `assert candidate(...) == x` (or `is None`), as source; None for other asserts."""
    try:
        node = ast.parse(test).body[0]
    except (SyntaxError, ValueError, IndexError):
        return None
    if not isinstance(node, ast.Assert) or not isinstance(node.test, ast.Compare):
        return None
    left = node.test.left
    if isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "candidate":
        return ast.unparse(left)
    return None


def _example_call(source: str, entry_point: str) -> str | None:
    try:
        expr = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == entry_point):
        return None
    return ast.unparse(_ToCandidate(entry_point).visit(expr))


def doctest_calls(docstring: str, entry_point: str) -> list[str]:
    """The calls of the docstring's `>>>` examples as `candidate(...)` source, whatever their expected output."""
    return [c for c in (_example_call(ex.source, entry_point) for ex in _doctest_examples(docstring)) if c]


def probe_test(calls: Sequence[str], marker: str, max_repr: int = 150) -> str:
    """A `check(candidate)` that calls the candidate on each input and writes, on one stderr line after
    `marker`, each result's repr (or `!ExceptionName`) and whether it is usable as an expected value: a repr
    of at most `max_repr` characters that evaluates back to an equal value."""
    fns = "".join(f"        lambda: {c},\n" for c in calls)
    return (
        "def check(candidate):\n"
        "    import json as _json, sys as _sys\n"
        "    _out = []\n"
        f"    for _f in (\n{fns}    ):\n"
        "        try:\n"
        "            _v = _f()\n"
        "            _r = repr(_v)\n"
        "            try:\n"
        f"                _ok = len(_r) <= {max_repr} and bool(eval(_r) == _v)\n"
        "            except Exception:\n"
        "                _ok = False\n"
        f"            _out.append([_r[:{max_repr + 10}], _ok])\n"
        "        except Exception as _e:\n"
        "            _out.append(['!' + type(_e).__name__, False])\n"
        f"    _sys.stderr.write('\\n{marker} ' + _json.dumps(_out) + '\\n')\n"
    )


def read_probe(stderr: str, marker: str, n_calls: int) -> list[tuple[str, bool]]:
    """The results `probe_test` wrote; every call an error when the program died before writing them."""
    import json

    for line in reversed(stderr.splitlines()):
        if line.startswith(marker + " "):
            try:
                rows = json.loads(line[len(marker) + 1:])
            except ValueError:
                break
            if len(rows) == n_calls:
                return [(str(r), bool(ok)) for r, ok in rows]
            break
    return [("!died", False)] * n_calls


@dataclass
class OutputSelection:
    solution: int  # the sample whose code is kept
    group: list[int]  # the samples that agree with it on every input
    calls: list[int]  # the inputs whose outputs become examples and tests
    outputs: list[str]  # their reprs, one per call in `calls`


def select_by_outputs(outputs: Sequence[Sequence[tuple[str, bool]]], stub: Sequence[tuple[str, bool]],
                      greedy: int | None = 0, min_agree: int = 2, min_tests: int = 2,
                      written: Sequence[str | None] = ()) -> OutputSelection | str:
    """The best group of samples with the same outputs on every input, and the inputs where those outputs are
    usable: no error, a literal that evaluates back, and not what the bare stub returns.

    A group scores its size times one plus the number of inputs where its output equals the writer's own
    expected value (`written[j]`, a literal or None): CodeT's dual agreement, smoothed so that a group still
    counts when the writer's values are all wrong, and so that a majority of wrong samples loses to a smaller
    group that the writer's tests confirm. Ties: the group holding the greedy sample. Returns why there is
    none: no group of `min_agree`, fewer than `min_tests` usable inputs, or one output for every input (a
    constant function teaches nothing)."""
    if not outputs:
        return "no solutions"
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(outputs):
        if all(not ok for _, ok in row):
            continue  # crashes everywhere, or nothing usable
        groups.setdefault(tuple(r for r, _ in row), []).append(i)
    if not groups:
        return "every solution fails on every input"
    def confirmed(key: tuple[str, ...]) -> int:
        return sum(1 for j, w in enumerate(written) if w is not None and j < len(key) and _same_literal(key[j], w))

    key, members = max(groups.items(),
                       key=lambda kv: (len(kv[1]) * (1 + confirmed(kv[0])), int(greedy in kv[1]), -kv[1][0]))
    if len(members) < min_agree:
        return "no agreement"
    row = outputs[members[0]]
    calls = [j for j, (r, ok) in enumerate(row) if ok and r != stub[j][0]]
    if len(calls) < min_tests:
        return "too few usable inputs"
    if len({row[j][0] for j in calls}) < 2:
        return "constant outputs"
    chosen = greedy if greedy in members else members[0]
    return OutputSelection(chosen, members, calls, [row[j][0] for j in calls])


def rewrite_examples(prompt: str, entry_point: str, outputs: dict[str, str]) -> str | None:
    """The prompt with each `>>>` example's expected output replaced by `outputs[call]` (calls as
    `candidate(...)` source), and the examples whose call has no output removed; None if none is left."""
    lines = prompt.split("\n")
    out: list[str] = []
    kept = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(">>> "):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        j = i + 1  # the expected lines: up to a blank line, the next example or the closing quotes
        while j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith((">>>", '"""', "\'\'\'")):
            j += 1
        call = _example_call(stripped[4:], entry_point)
        if call is not None and call in outputs:
            out += [line, indent + outputs[call]]
            kept += 1
        i = j
    return "\n".join(out) if kept else None


def output_assert(call: str, output: str) -> str:
    return f"assert {call} is None" if output == "None" else f"assert {call} == {output}"


# --------------------------------------------------------------------------------- CodeT selection


@dataclass
class Selection:
    solution: int  # index of the kept solution
    tests: tuple[int, ...]  # indices of the tests it passes (the problem's test from now on)
    group: tuple[int, ...]  # solutions that pass exactly those tests
    score: int  # len(group) * len(tests), CodeT's consensus score


def select_codet(passed: Sequence[Sequence[bool]], greedy: int | None = None,
                 informative: Sequence[bool] | None = None, min_tests: int = 2,
                 min_agree: int = 2) -> Selection | str:
    """CodeT dual agreement (arXiv 2207.10397 sec. 2.2) over a solutions x tests pass matrix.

    Solutions are grouped by the set of tests they pass; a group scores (#solutions) x (#tests passed).
    The best group (ties: the one holding the greedy solution, then more tests, then the earliest) gives
    one solution, the greedy one if it is in the group, else the group's first. `informative[j]` False
    marks a test that even a stub passes; it is ignored. Returns the selection or why there is none.
    """
    if not passed:
        return "no solutions"
    n_tests = len(passed[0])
    use = [informative is None or bool(informative[j]) for j in range(n_tests)]
    if sum(use) < min_tests:
        return "too few tests"
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(passed):
        key = tuple(j for j in range(n_tests) if row[j] and use[j])
        groups.setdefault(key, []).append(i)
    if all(not key for key in groups):
        return "all tests failed"

    def rank(item: tuple[tuple[int, ...], list[int]]) -> tuple[int, int, int, int]:
        key, members = item
        return (len(members) * len(key), int(greedy in members), len(key), -members[0])

    key, members = max(groups.items(), key=rank)
    if len(key) < min_tests:
        return "passes too few tests"
    if len(members) < min_agree:
        return "no agreement"
    chosen = greedy if greedy in members else members[0]
    return Selection(chosen, key, tuple(members), len(members) * len(key))


# ------------------------------------------------------------------------------------------ records


@dataclass
class Spliced:
    target: str  # the whole self-contained solution: prompt code with the verified body
    body: str  # HumanEval's canonical_solution: what follows the prompt


def splice(prompt: str, completion: str, entry_point: str) -> Spliced | None:
    """Put a solution's body under the problem's own signature and docstring.

    `completion` is what ``to_completion`` made of an answer: a full program that redefines the entry
    point, or a bare body. Imports the solution adds go first; helpers it defines go after the function.
    """
    try:
        tree = ast.parse(completion)
    except (SyntaxError, ValueError):
        return None
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and n.name == entry_point), None)
    if fn is None:  # a body continuing the prompt
        body = completion.lstrip("\n")
        return Spliced(prompt + body, body) if body.strip() else None
    lines = completion.split("\n")
    stmts = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
    if not stmts or all(_is_stub(s) for s in stmts):
        return None
    body = textwrap.indent(textwrap.dedent("\n".join(lines[stmts[0].lineno - 1 : fn.end_lineno])), "    ")
    body = body.rstrip() + "\n"
    prompt_imports = {ast.unparse(n) for n in ast.parse(prompt).body if isinstance(n, (ast.Import, ast.ImportFrom))}
    extra_imports, helpers = [], []
    for node in tree.body:
        if node is fn:
            continue
        seg = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if ast.unparse(node) not in prompt_imports:
                extra_imports.append(seg)
        else:
            helpers.append(seg)
    head = "".join(i + "\n" for i in extra_imports)
    tail = "".join("\n\n" + h + "\n" for h in helpers)
    target = (head + "\n" if head else "") + prompt + body + tail
    canonical = body + (("\n\n" + head if head else "") + tail if head or helpers else "")
    return Spliced(target, canonical)


@dataclass
class Kept:
    """One verified problem, ready to be written as a training record or a held-out problem."""

    seed_function: str
    prompt: str
    entry_point: str
    asserts: list[str]
    target: str
    body: str
    n_samples: int
    n_agree: int
    writer: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return "selfgen:" + _hash(self.prompt, 12)

    def problem(self, n: int) -> dict[str, Any]:
        return {"task_id": f"selfgen/{n}", "prompt": self.prompt, "entry_point": self.entry_point,
                "test": check_code(self.asserts)}


def train_record(k: Kept, n: int) -> dict[str, Any]:
    """The training-record format the SFT renderer reads (see docs/training-data.md)."""
    return {"id": k.id, "task": "code", "source": "selfgen", "problem": k.problem(n), "target": k.target,
            "meta": {"seed_function": k.seed_function, "n_samples": k.n_samples, "n_agree": k.n_agree,
                     "n_tests": len(k.asserts), "writer": k.writer, **k.meta}}


def heldout_problem(k: Kept, n: int) -> dict[str, Any]:
    """A HumanEval-format problem (task_id, prompt, canonical_solution, test, entry_point)."""
    p = k.problem(n)
    return {"task_id": p["task_id"], "prompt": p["prompt"], "canonical_solution": k.body, "test": p["test"],
            "entry_point": p["entry_point"]}


def split_kept(kept: Sequence[Kept], heldout_fraction: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train records, held-out problems): a seeded share of problems by id hash; task ids number them all."""
    train, held = [], []
    for n, k in enumerate(kept):
        if bucket(f"heldout:{seed}:{k.id}") < heldout_fraction:
            held.append(heldout_problem(k, n))
        else:
            train.append(train_record(k, n))
    return train, held
