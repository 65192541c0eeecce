"""API renaming for doc-grounded training: a library's public names become invented identifiers, the same way
in an example's target and in its documents, so that the model cannot answer from memory and must read the
documents -- what an unseen library asks of it (issue 19; Gorilla's retriever-aware training, arXiv
2305.15334, and DocPrompting, arXiv 2207.05987, train on documentation the model has to use).

Renaming is AST-guided and edits the source text in place (formatting and comments kept): import statements,
references to an imported module (``re.sub``), names imported from it (``from re import sub``), keyword
arguments of calls to a renamed function, and, in a document that defines a renamed API, its ``def``/``class``
name and its parameters. Every renamed text must still parse; `rename_code` raises ValueError otherwise.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_TAKEN = set(keyword.kwlist) | set(dir(builtins)) | {"self", "cls"}


class NameMaker:
    """Seeded, pronounceable, never-repeated identifiers (``vorimak``, ``Tesulo``) that no library defines."""

    def __init__(self, seed: int, avoid: Iterable[str] = ()) -> None:
        self.rng = random.Random(seed)
        self.used = set(_TAKEN) | set(avoid)

    def _word(self, syllables: int) -> str:
        return "".join(self.rng.choice(_CONSONANTS) + self.rng.choice(_VOWELS) for _ in range(syllables)) + \
            self.rng.choice(_CONSONANTS)

    def make(self, like: str) -> str:
        """A new name in the style of `like`: snake_case parts for snake_case, CamelCase for a class name."""
        parts = max(1, min(3, len([p for p in like.strip("_").split("_") if p])))
        for _ in range(1000):
            words = [self._word(self.rng.randint(2, 3) if parts == 1 else self.rng.randint(1, 2)) for _ in range(parts)]
            name = "".join(w.capitalize() for w in words) if like[:1].isupper() else "_".join(words)
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("could not invent a fresh name")


@dataclass
class RenameMap:
    """Old -> new names: modules, APIs of a module (function or class), and parameters of a renamed function."""

    modules: dict[str, str] = field(default_factory=dict)  # "re" -> "vorimak"
    apis: dict[tuple[str, str], str] = field(default_factory=dict)  # ("re", "sub") -> "tesul"
    params: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # ("re", "sub") -> {"count": "bala"}

    def new_names(self) -> set[str]:
        return {*self.modules.values(), *self.apis.values(), *(n for p in self.params.values() for n in p.values())}

    def to_dict(self) -> dict:
        return {"modules": dict(self.modules), "apis": {f"{m}.{a}": n for (m, a), n in self.apis.items()},
                "params": {f"{m}.{a}": dict(p) for (m, a), p in self.params.items()}}


def _bindings(tree: ast.AST, mapping: RenameMap) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Names the code binds by import: {local name: module} for ``import m [as x]``, {local: (module, api)}
    for ``from m import api [as x]``, restricted to the modules the map renames."""
    mods: dict[str, str] = {}
    names: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in mapping.modules:
                    mods[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in mapping.modules:
            for a in node.names:
                names[a.asname or a.name] = (node.module, a.name)
    return mods, names


class _Edits:
    """Replacements at (line, byte column) positions, applied from the end so positions stay valid."""

    def __init__(self, text: str) -> None:
        self.lines = [line.encode("utf-8") for line in text.splitlines(keepends=True)]
        self.edits: dict[tuple[int, int], tuple[int, str]] = {}

    def put(self, lineno: int, col: int, old: str, new: str) -> None:
        line = self.lines[lineno - 1]
        if line[col:col + len(old.encode())] != old.encode():
            raise ValueError(f"rename: expected {old!r} at line {lineno} col {col}")
        self.edits[(lineno, col)] = (len(old.encode()), new)

    def find_put(self, lineno: int, start: int, end_line: int, old: str, new: str) -> None:
        """Replace the first whole-word `old` at or after (lineno, start), searching to `end_line`."""
        pat = re.compile(rb"(?<![A-Za-z0-9_.])" + re.escape(old.encode()) + rb"(?![A-Za-z0-9_])")
        for ln in range(lineno, end_line + 1):
            m = pat.search(self.lines[ln - 1], start if ln == lineno else 0)
            if m:
                self.put(ln, m.start(), old, new)
                return
        raise ValueError(f"rename: {old!r} not found from line {lineno}")

    def text(self) -> str:
        lines = list(self.lines)
        for (ln, col), (n, new) in sorted(self.edits.items(), reverse=True):
            line = lines[ln - 1]
            lines[ln - 1] = line[:col] + new.encode() + line[col + n:]
        return b"".join(lines).decode("utf-8")


def rename_code(code: str, mapping: RenameMap, defines: str | None = None) -> str:
    """`code` with the map's names replaced. `defines` is the module the code belongs to: a ``def`` or ``class``
    of a renamed API of that module is renamed too, with its parameters (and their uses inside it), and so are
    the code's unqualified references to that module's renamed functions (a call of a sibling function)."""
    tree = ast.parse(code)
    mods, names = _bindings(tree, mapping)
    if defines is not None:
        for (mod, api), _new in mapping.apis.items():
            if mod == defines and api not in names and api not in mods:
                names[api] = (mod, api)
    ed = _Edits(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in mapping.modules:
                    ed.put(a.lineno, a.col_offset, a.name, mapping.modules[a.name])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in mapping.modules:
            ed.find_put(node.lineno, node.col_offset + len("from"), node.end_lineno or node.lineno, node.module,
                        mapping.modules[node.module])
            for a in node.names:
                new = mapping.apis.get((node.module, a.name))
                if new:
                    ed.put(a.lineno, a.col_offset, a.name, new)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in mods:
            new = mapping.apis.get((mods[node.value.id], node.attr))
            if new and node.end_lineno is not None and node.end_col_offset is not None:
                ed.put(node.end_lineno, node.end_col_offset - len(node.attr.encode()), node.attr, new)
        elif isinstance(node, ast.Name):
            if node.id in mods and node.id == mods[node.id]:  # `import re` used as `re`: the module's own name
                ed.put(node.lineno, node.col_offset, node.id, mapping.modules[node.id])
            elif node.id in names and (names[node.id][1] == node.id) and mapping.apis.get(names[node.id]):
                ed.put(node.lineno, node.col_offset, node.id, mapping.apis[names[node.id]])
        if isinstance(node, ast.Call):
            api = _called_api(node.func, mods, names)
            kw = mapping.params.get(api) if api else None
            for k in node.keywords if kw else ():
                if k.arg in kw:
                    ed.put(k.lineno, k.col_offset, k.arg, kw[k.arg])
    if defines is not None:
        _rename_definitions(tree, mapping, defines, ed)
    out = ed.text()
    ast.parse(out)  # every renamed text must still parse (SyntaxError is a ValueError)
    return out


def _called_api(func: ast.expr, mods: dict[str, str], names: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in mods:
        return mods[func.value.id], func.attr
    if isinstance(func, ast.Name) and func.id in names:
        return names[func.id]
    return None


def _rename_definitions(tree: ast.AST, mapping: RenameMap, module: str, ed: _Edits) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        new = mapping.apis.get((module, node.name))
        if not new:
            continue
        ed.find_put(node.lineno, node.col_offset, node.lineno + 3, node.name, new)
        params = mapping.params.get((module, node.name)) or {}
        if isinstance(node, ast.ClassDef) or not params:
            continue
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *([a.vararg] if a.vararg else []), *([a.kwarg] if a.kwarg else [])]:
            if arg.arg in params:
                ed.put(arg.lineno, arg.col_offset, arg.arg, params[arg.arg])
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in params:
                ed.put(sub.lineno, sub.col_offset, sub.id, params[sub.id])


def rename_prose(text: str, mapping: RenameMap) -> str:
    """Mentions of renamed names in a docstring or comment: dotted ``module.api`` forms, and ``api(`` or
    backticked names of the renamed APIs. Plain words are left alone (``sub`` is also an English word)."""
    for (mod, api), new in mapping.apis.items():
        new_mod = mapping.modules.get(mod, mod)
        text = re.sub(rf"(?<![\w.]){re.escape(mod)}\.{re.escape(api)}(?!\w)", f"{new_mod}.{new}", text)
        text = re.sub(rf"(?<![\w.]){re.escape(api)}(?=\()", new, text)
        text = re.sub(rf"`{re.escape(api)}`", f"`{new}`", text)
    for mod, new in mapping.modules.items():
        text = re.sub(rf"`{re.escape(mod)}`", f"`{new}`", text)
    return text


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifiers(text: str) -> set[str]:
    return set(IDENT.findall(text))
