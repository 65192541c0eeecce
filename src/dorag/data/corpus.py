"""Retrieval corpora as JSONL documents ``{"id", "text", "meta"}``, built from code or text sources.

Code is split by AST into functions and methods, each document carrying its signature, docstring,
imports and enclosing class, so a retrieved snippet reads on its own. Long documents are chunked on line
boundaries under a budget; exact duplicates (after whitespace normalisation) are dropped.
"""

from __future__ import annotations

import ast
import csv
import importlib
import importlib.util
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.data.ast_extract import FunctionRecord, dedupe_key

Document = dict[str, Any]


def used_imports(imports: Iterable[str], code: str) -> list[str]:
    """The import statements that bind a name the code uses (``import os.path`` binds ``os``)."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    kept = []
    for stmt in imports:
        try:
            node = ast.parse(stmt).body[0]
        except (SyntaxError, IndexError):
            continue
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        aliases = [a for a in node.names if (a.asname or a.name.split(".")[0]) in names]
        if not aliases:
            continue
        if isinstance(node, ast.Import):
            kept.append("import " + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in aliases))
        else:
            mod = "." * node.level + (node.module or "")
            kept.append(f"from {mod} import " + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in aliases))
    return kept


def function_document(rec: FunctionRecord) -> Document:
    """One function as a self-contained document: the imports it uses, then the code; a method sits
    indented under its class header, as in the source."""
    parts = []
    imports = used_imports(rec.imports, rec.code + (rec.class_context or ""))
    if imports:
        parts.append("\n".join(imports))
    code = rec.code.rstrip()
    if rec.class_context:
        parts.append(rec.class_context.rstrip() + "\n" + textwrap.indent(code, "    "))
    else:
        parts.append(code)
    return {"id": rec.id, "text": "\n\n".join(parts) + "\n",
            "meta": {"path": rec.path, "module": rec.module, "qualname": rec.qualname, "lineno": rec.lineno,
                     "kind": "method" if rec.is_method else "function", "has_docstring": rec.docstring is not None}}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _header(lines: list[str]) -> list[str]:
    """The lines up to and including the first ``def``/``class`` line: the context every chunk repeats."""
    for i, line in enumerate(lines[:40]):
        if line.lstrip().startswith(("def ", "async def ", "class ")):
            return lines[: i + 1]
    return []


def words(text: str) -> int:
    return len(text.split())


def chunk(doc: Document, max_units: int, count: Callable[[str], int] = words) -> list[Document]:
    """Split a document into pieces of at most `max_units` (words by default, or tokens with a
    tokenizer's length function), code-aware:

    - cuts fall on line boundaries, preferably before a statement at the body's outermost indentation
      (not inside a nested block or a bracketed continuation) when that keeps at least half a piece;
    - every piece after the first starts with the document's header (imports, class line, ``def`` line)
      and a ``# ...`` marker, so a retrieved chunk still says which function it comes from.
    A single over-long line is kept whole.
    """
    if count(doc["text"]) <= max_units:
        return [doc]
    lines = doc["text"].splitlines(keepends=True)
    header = _header(lines)
    body = lines[len(header):] if header else lines
    base = min((_indent(l) for l in body if l.strip()), default=0)
    prefix = "".join(header) + (" " * base + "# ...\n" if header else "")
    prefix_cost = count(prefix) if header else 0
    pieces: list[list[str]] = []
    current: list[str] = list(header)
    size = count("".join(header)) if header else 0
    good_break = -1  # index in `current` before which a cut is clean
    depth = 0  # open brackets: a line inside a bracketed continuation is never a clean break
    for line in body:
        n = count(line)
        budget = max_units - (prefix_cost if pieces else 0)
        if current and size + n > budget and len(current) > (len(header) if not pieces else 0):
            if good_break > len(current) // 2:
                keep, carry = current[:good_break], current[good_break:]
            else:
                keep, carry = current, []
            pieces.append(keep)
            current, size = list(carry), count("".join(carry)) if carry else 0
            good_break = -1
        if line.strip() and depth == 0 and _indent(line) <= base and current:
            good_break = len(current)
        current.append(line)
        size += n
        depth = max(0, depth + sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}"))
    if current:
        pieces.append(current)
    texts = ["".join(p) if i == 0 or not header else prefix + "".join(p) for i, p in enumerate(pieces)]
    return [{"id": f"{doc['id']}#{i}", "text": text, "meta": {**doc.get("meta", {}), "chunk": i, "parent": doc["id"]}}
            for i, text in enumerate(texts)]


def dedupe(docs: Iterable[Document]) -> Iterator[Document]:
    seen: set[str] = set()
    for d in docs:
        key = dedupe_key(d["text"])
        if key not in seen:
            seen.add(key)
            yield d


def from_functions(records: Iterable[FunctionRecord], max_units: int = 400,
                   count: Callable[[str], int] = words) -> list[Document]:
    docs = (piece for rec in records for piece in chunk(function_document(rec), max_units, count))
    return unique_ids(dedupe(docs))


def unique_ids(docs: Iterable[Document]) -> list[Document]:
    """Give repeated ids (a property's getter and setter share a qualname) a ``@line`` suffix."""
    out, seen = [], set()
    for d in docs:
        if d["id"] in seen:
            d = {**d, "id": f"{d['id']}@{d.get('meta', {}).get('lineno', len(out))}"}
            n = 2
            while d["id"] in seen:
                d = {**d, "id": f"{d['id'].rsplit('~', 1)[0]}~{n}"}
                n += 1
        seen.add(d["id"])
        out.append(d)
    return out


def from_table(path: str | Path) -> list[Document]:
    """Any JSONL or CSV with ``id`` and ``text`` columns (REPLUG's passage format); extra columns go to meta."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(enumerate(csv.DictReader(fh), start=2))
    else:
        rows = list(iter_jsonl_numbered(path))
    docs = []
    for line, row in rows:
        if not row.get("id") or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise DataError(f"{path}:{line}: a corpus row needs a non-empty id and text")
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {k: v for k, v in row.items() if k not in ("id", "text")}
        docs.append({"id": str(row["id"]), "text": row["text"], "meta": meta})
    if not docs:
        raise DataError(f"{path}: empty corpus")
    return docs


# ---------------------------------------------------------------- classes

def class_documents(source: str, path: str = "<string>", module: str = "<string>") -> list[Document]:
    """One document per class: its header, docstring and the signatures of its methods (the class's API)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    docs: list[Document] = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if not isinstance(node, ast.ClassDef):
                continue
            qual = f"{prefix}{node.name}"
            header_end = node.body[0].lineno - 1 if node.body else node.lineno
            header = "\n".join(lines[node.lineno - 1 - len(node.decorator_list) : max(header_end, node.lineno)])
            header = textwrap.dedent(header).rstrip()
            parts = [header]
            doc = ast.get_docstring(node)
            if doc:
                parts.append(textwrap.indent('"""' + doc.strip() + '\n"""', "    "))
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    sig = lines[item.lineno - 1].strip()
                    end = item.body[0].lineno - 1 if item.body else item.lineno
                    if end > item.lineno:  # multi-line signature
                        sig = " ".join(l.strip() for l in lines[item.lineno - 1 : end])
                    first = (ast.get_docstring(item) or "").strip().split("\n", 1)[0]
                    parts.append(f"    {sig.split(':  #')[0]}" + (f"\n        \"\"\"{first}\"\"\"" if first else ""))
            docs.append({"id": f"{module}:{qual}", "text": "\n".join(parts) + "\n",
                         "meta": {"path": path, "module": module, "qualname": qual, "lineno": node.lineno,
                                  "kind": "class", "has_docstring": doc is not None}})
            visit(node.body, qual + ".")

    visit(tree.body, "")
    return docs


# ---------------------------------------------------------------- sources

def package_dir(name: str) -> Path:
    """The source directory of an installed package."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {name!r} is not installed (source package:{name}); pip install it first")
    return Path(list(spec.submodule_search_locations)[0])


def from_code(root: str | Path, exclude: Iterable[str] = ("test", "tests"), max_units: int = 400,
              classes: bool = True, count: Callable[[str], int] = words) -> list[Document]:
    """Functions, methods and (optionally) classes of every .py file under `root`."""
    from dorag.data.ast_extract import extract_from_tree, iter_python_files, module_base, module_name

    root = Path(root)
    docs: list[Document] = [piece for rec in extract_from_tree(root, exclude)
                            for piece in chunk(function_document(rec), max_units, count)]
    if classes:
        base = module_base(root)
        for path in iter_python_files(root, exclude):
            try:
                source = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            docs += [p for d in class_documents(source, str(path), module_name(path, base)) for p in chunk(d, max_units, count)]
    return unique_ids(dedupe(docs))


def from_stdlib(max_units: int = 400, classes: bool = True, count: Callable[[str], int] = words) -> list[Document]:
    from dorag.data.ast_extract import STDLIB_EXCLUDE, stdlib_root

    return from_code(stdlib_root(), STDLIB_EXCLUDE, max_units, classes, count)


def from_apidoc(package: str, max_members: int = 100_000) -> list[Document]:
    """API documentation text of an importable package, from `inspect`: one document per public function,
    class and method with its signature and docstring (what `pydoc` shows). Importing runs the package's
    code, so use it on packages you trust (installed ones)."""
    import inspect
    import pkgutil
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = importlib.import_module(package)
    except Exception as exc:  # an import failure of any kind is the user's package, not ours
        raise DataError(f"apidoc:{package}: cannot import {package!r} ({type(exc).__name__}: {exc})") from None
    modules = [root]
    for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix=package + "."):
        if any(part.startswith("_") or part in ("tests", "test") for part in info.name.split(".")[1:]):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modules.append(importlib.import_module(info.name))
        except Exception:  # noqa: BLE001 - optional submodules (platform-specific) may not import
            continue
    docs: list[Document] = []
    seen: set[str] = set()

    def entry(qualname: str, obj: Any, module: str, kind: str) -> None:
        doc = inspect.getdoc(obj)
        if not doc or qualname in seen:
            return
        seen.add(qualname)
        try:
            sig = str(inspect.signature(obj))
        except (TypeError, ValueError):
            sig = "(...)"
        head = f"class {qualname}{sig}" if kind == "class" else f"{qualname}{sig}"
        docs.append({"id": f"apidoc:{qualname}", "text": f"{head}\n\n{doc.strip()}\n",
                     "meta": {"module": module, "qualname": qualname, "kind": kind, "source": "apidoc"}})

    for mod in modules:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name, None)
            if obj is None or getattr(obj, "__module__", mod.__name__) != mod.__name__:
                continue  # re-exports are documented where they are defined
            if inspect.isclass(obj):
                entry(f"{mod.__name__}.{name}", obj, mod.__name__, "class")
                for mname, member in vars(obj).items():
                    if not mname.startswith("_") and (inspect.isroutine(member) or isinstance(member, (classmethod, staticmethod))):
                        entry(f"{mod.__name__}.{name}.{mname}", getattr(obj, mname), mod.__name__, "method")
            elif callable(obj) and not inspect.ismodule(obj):  # functions, builtins, ufuncs, dispatchers
                entry(f"{mod.__name__}.{name}", obj, mod.__name__, "function")
            if len(docs) >= max_members:
                return docs
    return docs


CSN_FIELDS = ("code", "original_string", "func_name")


def from_codesearchnet(path_or_language: str, split: str | None = None, limit: int | None = None) -> list[Document]:
    """CodeSearchNet functions as documents. Reads the official ``*.jsonl.gz`` (or .jsonl) files from a
    file or directory (fields repo, path, func_name, original_string, code, docstring, url, partition),
    or, given a language name, the Hub dataset ``code_search_net`` (needs the network and `dorag[data]`)."""
    path = Path(path_or_language)
    if path.exists():
        files = sorted(path.rglob("*.jsonl*")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path}: no CodeSearchNet .jsonl or .jsonl.gz files found")
        rows = ((f, line, row) for f in files for line, row in iter_jsonl_numbered(f))
    elif path_or_language in ("python", "java", "go", "php", "ruby", "javascript"):
        from dorag.core.require import require

        datasets = require("datasets", extra="data")
        try:
            ds = datasets.load_dataset("code_search_net", path_or_language, split=split or "train")
        except Exception as exc:  # noqa: BLE001 - offline: ConnectionError, OSError, HF errors
            raise DataError(f"codesearchnet:{path_or_language}: cannot load from the Hub ({type(exc).__name__}); "
                            "offline, download the official jsonl.gz files and give their directory") from None
        rows = ((Path("hub"), i + 1, {**r, "code": r.get("whole_func_string") or r.get("func_code_string"),
                                      "url": r.get("func_code_url"), "path": r.get("func_path_in_repository"),
                                      "repo": r.get("repository_name"), "partition": r.get("split_name")})
                for i, r in enumerate(ds))
    else:
        raise DataError(f"codesearchnet:{path_or_language}: not a file, a directory or a CodeSearchNet language")
    docs: list[Document] = []
    for f, line, row in rows:
        code = row.get("original_string") or row.get("code")
        if not isinstance(code, str) or not code.strip():
            raise DataError(f"{f}:{line}: a CodeSearchNet row needs 'original_string' or 'code'")
        if split and row.get("partition") not in (None, split):
            continue
        doc_id = row.get("url") or f"{row.get('repo', '')}/{row.get('path', '')}:{row.get('func_name', line)}"
        docs.append({"id": str(doc_id), "text": code.rstrip() + "\n",
                     "meta": {k: row[k] for k in ("repo", "path", "func_name", "language", "partition") if row.get(k)}})
        if limit and len(docs) >= limit:
            break
    return unique_ids(dedupe(docs))


SOURCE_HELP = ("stdlib, package:NAME, apidoc:PACKAGE, codesearchnet:DIR|FILE|LANGUAGE, a source directory, "
               "or a JSONL/CSV file with id,text")


def build_corpus(sources: Sequence[str], max_units: int = 400, classes: bool = True,
                 count: Callable[[str], int] = words) -> list[Document]:
    """Documents from every source, chunked to `max_units` (as measured by `count`: words, or an
    embedder's tokens), deduplicated across sources, with unique ids."""
    docs: list[Document] = []
    for src in sources:
        if src == "stdlib":
            docs += from_stdlib(max_units, classes, count)
        elif src.startswith("package:"):
            docs += from_code(package_dir(src.split(":", 1)[1]), max_units=max_units, classes=classes, count=count)
        elif src.startswith("apidoc:"):
            docs += [p for d in from_apidoc(src.split(":", 1)[1]) for p in chunk(d, max_units, count)]
        elif src.startswith("codesearchnet:"):
            docs += [p for d in from_codesearchnet(src.split(":", 1)[1]) for p in chunk(d, max_units, count)]
        elif Path(src).is_dir():
            docs += from_code(src, max_units=max_units, classes=classes, count=count)
        elif Path(src).is_file() and Path(src).suffix in (".jsonl", ".csv", ".gz"):
            docs += [p for d in from_table(src) for p in chunk(d, max_units, count)]
        elif Path(src).is_file() and Path(src).suffix == ".py":
            docs += from_code(src, max_units=max_units, classes=classes, count=count)
        else:
            raise DataError(f"corpus source {src!r} not found or not recognised; give {SOURCE_HELP}")
    docs = unique_ids(dedupe(docs))
    if not docs:
        raise DataError(f"the sources {list(sources)} produced an empty corpus")
    return docs
