"""Turn a model's answer into a runnable completion: extract the code block, drop demo code, repair truncation."""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```[ \t]*([\w+\-.]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The code in a markdown answer: the fenced block that defines `entry_point`, else the first python
    block, else the first block; the text itself when it has no fence. An unclosed fence runs to the end."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if not blocks:
        return text
    if entry_point:
        for _, code in blocks:
            if re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
                return code
    for lang, code in blocks:
        if lang in ("python", "py", "python3"):
            return code
    return blocks[0][1]


_SQL_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)


def extract_sql(text: str) -> str:
    """The SQL in an answer: the first ```sql block (else the first fenced block, else the text from its
    first SELECT/WITH), cut after its first statement (the first ``;`` outside quotes), without the ``;``."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if blocks:
        sql = next((code for lang, code in blocks if lang in ("sql", "sqlite")), blocks[0][1])
    else:
        m = _SQL_START.search(text)
        sql = text[m.start():] if m else text
    quote = ""
    for i, ch in enumerate(sql):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == ";":
            sql = sql[:i]
            break
    return sql.strip()


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def _longest_parsable_prefix(code: str) -> str:
    lines = code.split("\n")
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _parses(candidate):
            return candidate
    return ""


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def sanitize(code: str) -> str:
    """Keep what a solution needs (imports, functions, classes, top-level assignments); drop demo code:
    ``if __name__ == "__main__"`` blocks, prints, asserts and other bare expressions. A truncated tail that
    does not parse is cut back to the longest prefix that does (like EvalPlus' sanitizer)."""
    if not _parses(code):
        code = _longest_parsable_prefix(code)
    if not code.strip():
        return ""
    tree = ast.parse(code)
    keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
            ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Try, ast.If, ast.With)
    lines = code.split("\n")
    out: list[str] = []
    for node in tree.body:
        if not isinstance(node, keep) or _is_main_guard(node):
            continue
        start = node.lineno - 1
        if getattr(node, "decorator_list", None):
            start = min(d.lineno for d in node.decorator_list) - 1
        out.append("\n".join(lines[start : node.end_lineno]))
    return "\n".join(out) + "\n" if out else ""


def defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def to_completion(answer: str, entry_point: str, style: str, kind: str = "function") -> str:
    """The `completion` field for a HumanEval-format samples file.

    Chat answers that define `entry_point` become a full program; the harness runs prompt + completion,
    so the new definition replaces the prompt's stub (which is a valid docstring-only function). Answers
    without the definition are treated as a function body, like raw completions. For `kind="snippet"`
    benchmarks (DS-1000) the code block is taken as it is, since bare statements are the answer.
    """
    if kind == "sql":
        return extract_sql(answer)
    if style == "completion":
        return answer
    code = extract_code(answer, entry_point)
    if kind == "snippet":
        return code
    clean = sanitize(code)
    if defines(clean, entry_point):
        return "\n" + clean
    return code
