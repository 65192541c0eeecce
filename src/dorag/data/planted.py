"""Planted-solution corpora: what a leakage check must catch.

Each canonical solution body becomes documents the way a scraped corpus would hold it: without its `def` line
(a snippet, a Stack Overflow answer), re-indented and re-wrapped, with its local names renamed, or inside a
markdown answer. `dorag index leakage` is measured on these (bench/leakage.py) and the tests plant them into
real corpora (tests/unit/test_leakage.py).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import textwrap
from collections.abc import Iterable, Iterator
from typing import Any

VARIANTS = ("verbatim", "reindented", "renamed", "markdown")
_KEEP = frozenset(keyword.kwlist) | frozenset(dir(builtins))


def local_names(body: str) -> list[str]:
    """The names a body binds or reads that are not builtins or imported modules, in order of appearance:
    its parameters (free names) and its locals."""
    tree = ast.parse(textwrap.dedent(body))
    imported = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    seen: dict[str, None] = {}
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.arg if isinstance(node, ast.arg) else None
        if name and name not in _KEEP and name not in imported:
            seen.setdefault(name, None)
    return list(seen)


def rename_locals(body: str, prefix: str = "var") -> str:
    """The body with every local and parameter name replaced (`var0`, `var1`, ...), by AST."""
    mapping = {name: f"{prefix}{i}" for i, name in enumerate(local_names(body))}

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            node.id = mapping.get(node.id, node.id)
            return node

        def visit_arg(self, node: ast.arg) -> ast.arg:
            node.arg = mapping.get(node.arg, node.arg)
            return node

    return ast.unparse(Rename().visit(ast.parse(textwrap.dedent(body)))) + "\n"


def reindent(body: str) -> str:
    """Two-space indentation under a two-space margin, with the arguments of long calls wrapped onto their
    own line (what a formatter or a forum post does to the same code)."""
    lines = [("  " * ((len(line) - len(line.lstrip(" "))) // 4)) + line.lstrip(" ")
             for line in ast.unparse(ast.parse(textwrap.dedent(body))).splitlines()]
    for i, line in enumerate(lines):
        stripped = line.lstrip(" ")
        if "(" in stripped and stripped.endswith(")") and ", " in stripped and len(stripped) > 20:
            head, _, rest = line.partition("(")
            wrapped = lines[:i] + [f"{head}(", f"{' ' * (len(line) - len(stripped))}    {rest}"] + lines[i + 1:]
            try:
                ast.parse("\n".join(wrapped))
            except SyntaxError:  # the first parenthesis was inside a string
                continue
            lines = wrapped
            break  # one wrap per body keeps the line numbering simple
    return textwrap.indent("\n".join(lines) + "\n", "  ")


def variants(body: str) -> dict[str, str]:
    text = textwrap.dedent(body)
    return {
        "verbatim": body,
        "reindented": reindent(body),
        "renamed": rename_locals(body),
        "markdown": "Here is how you can do it:\n\n```python\n" + text.rstrip() + "\n```\n\nThis runs in linear time.\n",
    }


def planted_docs(problems: Iterable[dict[str, Any]], which: Iterable[str] = VARIANTS) -> Iterator[dict[str, Any]]:
    """One document per (problem, variant): id `planted/<variant>/<task_id>`."""
    which = tuple(which)
    for p in problems:
        body = p.get("canonical_solution") or ""
        if not body.strip():
            continue
        for name, text in variants(body).items():
            if name in which:
                yield {"id": f"planted/{name}/{p['task_id']}", "text": text, "meta": {"task_id": p["task_id"]}}
