"""Insert docstrings into Python source without touching anything else.

Edits are line insertions right after a function's header, at its body's indentation. Before a file is
written, the result is checked: its AST with docstrings removed must equal the original's with
docstrings removed, so only docstrings can have changed.
"""

from __future__ import annotations

import ast
import copy
import difflib
import re
from dataclasses import dataclass

from dorag.core.errors import DataError


@dataclass
class Target:
    qualname: str
    lineno: int  # 1-based line of the `def`
    insert_at: int  # 0-based line index where the docstring goes (before the first body line)
    indent: str
    code: str  # the function's source


def missing_docstrings(source: str, include_private: bool = False) -> list[Target]:
    """Functions and methods without a docstring whose body starts on its own line."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise DataError(f"cannot parse the file: {exc}") from exc
    lines = source.splitlines(keepends=True)
    out: list[Target] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, f"{prefix}{node.name}.")
                if ast.get_docstring(node) is not None:
                    continue
                if node.name.startswith("_") and not include_private:
                    continue
                first = node.body[0]
                if first.lineno == node.lineno:  # `def f(): return 1`: no line to insert before
                    continue
                start_line = lines[first.lineno - 1]
                indent = re.match(r"[ \t]*", start_line).group(0)
                start = (min(d.lineno for d in node.decorator_list) if node.decorator_list else node.lineno) - 1
                out.append(Target(f"{prefix}{node.name}", node.lineno, first.lineno - 1, indent,
                                  "".join(lines[start : node.end_lineno])))

    visit(tree.body, "")
    return out


def clean_docstring(text: str) -> str:
    """The model's answer reduced to docstring text: no fences, quotes, or `def` echo."""
    text = text.strip()
    fence = re.search(r"```(?:\w+)?\n(.*?)(?:```|$)", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    m = re.search(r'("""|\'\'\')(.*?)(\1|$)', text, re.DOTALL)
    if m:
        text = m.group(2).strip()
    text = text.replace('"""', "'''").replace("\\", "\\\\")
    return text.strip()


def format_docstring(text: str, indent: str) -> str:
    lines = text.splitlines() or [""]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""\n'
    body = "\n".join((indent + line) if line.strip() else "" for line in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}\n{indent}"""\n'


def strip_docstrings(tree: ast.AST) -> ast.AST:
    tree = copy.deepcopy(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def same_code(a: str, b: str) -> bool:
    """Whether two sources differ in docstrings only."""
    return ast.dump(strip_docstrings(ast.parse(a))) == ast.dump(strip_docstrings(ast.parse(b)))


def insert_docstrings(source: str, docs: dict[int, str], targets: list[Target]) -> str:
    """`docs` maps a target's def line to its docstring text; returns the new source, verified."""
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for t in sorted(targets, key=lambda t: -t.insert_at):  # bottom-up keeps earlier indices valid
        if t.lineno in docs and docs[t.lineno].strip():
            lines.insert(t.insert_at, format_docstring(docs[t.lineno], t.indent))
    new = "".join(lines)
    if not source.endswith("\n") and new.endswith("\n"):
        new = new[:-1]
    if not same_code(source, new):
        raise DataError("inserting docstrings would change code other than docstrings; nothing written")
    return new


def unified_diff(old: str, new: str, path: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))
