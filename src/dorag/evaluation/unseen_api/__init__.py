"""The Unseen-API benchmark: tasks against `zorbel`, a time-series library written for this benchmark.

No pretrained model can have memorised zorbel: its names (`spool`, `tally`, `pinch`...), argument
orders (`nudge(delta, reel)`, `pinch(reel, ceiling, floor)`), return types and error types
(`StampAbsent`, not `KeyError`) were invented here. The library ships as package data (`zorbel.py`);
its docstrings carry examples, `tests/unit/test_zorbel.py` is its test suite, and `reference_page()`
renders its reference documentation.

Problems are HumanEval-format dicts. Every program the sandbox runs starts with `setup_code`, which
installs the library source as the module `zorbel` (so nothing depends on where dorag is installed).
`corpus()` is the retrieval corpus (the library's source split by AST, plus the reference page
entries), and `qrels()` maps each task to the documents of the APIs it needs.
"""

from __future__ import annotations

import inspect
import re
import textwrap
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
LIBRARY = HERE / "zorbel.py"
TASK_PREFIX = "UnseenAPI"


@lru_cache(maxsize=1)
def library_source() -> str:
    return LIBRARY.read_text(encoding="utf-8")


def load_library() -> types.ModuleType:
    """The library as a fresh module object (not registered in sys.modules)."""
    mod = types.ModuleType("zorbel")
    mod.__file__ = str(LIBRARY)
    exec(compile(library_source(), str(LIBRARY), "exec"), mod.__dict__)  # noqa: S102 - our own package data
    return mod


@lru_cache(maxsize=1)
def setup_code() -> str:
    """Python that installs the library as module `zorbel` in the program that runs it."""
    return ("import sys as _sys, types as _types\n"
            "_zorbel = _types.ModuleType('zorbel')\n"
            "_zorbel.__file__ = 'zorbel.py'\n"
            f"exec(compile({library_source()!r}, 'zorbel.py', 'exec'), _zorbel.__dict__)\n"
            "_sys.modules['zorbel'] = _zorbel\n"
            "del _sys, _types, _zorbel\n")


def _example(entry: str, test: str) -> str | None:
    """A doctest line from a test of the form ``candidate(...)... == expected`` (or ``is True/None``)."""
    if not test.startswith("candidate("):
        return None
    for op in (" == ", " is "):
        if op in test:
            call, expected = test.split(op, 1)
            return f">>> {entry}{call[len('candidate'):]}\n{expected}"
    return None


def humaneval_parts(task: Any, header: str) -> tuple[str, str, str]:
    """(prompt, canonical_solution, test) of a task, in HumanEval form, under the import line `header`.
    The docstring is the description plus the first test as its example."""
    doc = textwrap.fill(task.doc, width=88, subsequent_indent="    ")
    examples = [e for e in (_example(task.entry, t) for t in task.tests[:1]) if e]
    body = doc + ("\n\n" + "\n".join(textwrap.indent(e, "    ") for e in examples) if examples else "")
    prompt = f"{header}\n\n\ndef {task.entry}({task.params}):\n    \"\"\"{body}\n    \"\"\"\n"
    solution = "    " + task.body.strip("\n") + "\n"  # continuation lines are written with their full indentation
    test = f"{header}\n\n\ndef check(candidate):\n" + "".join(f"    assert {t}\n" for t in task.tests)
    return prompt, solution, test


def build_problem(i: int, task: Any, version: str) -> dict[str, Any]:
    prompt, solution, test = humaneval_parts(task, "import zorbel")
    return {"task_id": f"{TASK_PREFIX}/{i}", "prompt": prompt, "canonical_solution": solution,
            "test": test, "entry_point": task.entry, "setup_code": setup_code(),
            "meta": {"library": "zorbel", "library_version": version, "apis": list(task.apis),
                     "difficulty": task.level}}


def load_problems(path: str | None = None) -> list[dict[str, Any]]:
    """All Unseen-API problems (`path` is accepted for the registry's signature and must be None)."""
    from dorag.core.errors import DataError
    from dorag.evaluation.unseen_api.tasks import TASKS

    if path is not None:
        raise DataError("unseen-api ships with dorag; it takes no --benchmark-path (use --problems FILE for a copy)")
    version = load_library().__version__
    return [build_problem(i, t, version) for i, t in enumerate(TASKS)]


def build_shift_problem(i: int, task: Any, numpy_version: str) -> dict[str, Any]:
    prompt, solution, test = humaneval_parts(task, "import numpy as np")
    return {"task_id": f"{TASK_PREFIX}Shift/{i}", "prompt": prompt, "canonical_solution": solution,
            "test": test, "entry_point": task.entry,
            "meta": {"library": "numpy", "library_version": numpy_version, "apis": list(task.apis),
                     "removed": list(task.old), "difficulty": "single"}}


def load_shift_problems(path: str | None = None) -> list[dict[str, Any]]:
    """The version-shift variant (numpy 2.x removals); refuses to run on numpy 1.x, where it measures nothing."""
    import numpy as np

    from dorag.core.errors import DataError
    from dorag.evaluation.unseen_api.shift_tasks import SHIFT_TASKS

    if path is not None:
        raise DataError("unseen-api-shift ships with dorag; it takes no --benchmark-path")
    if int(np.__version__.split(".")[0]) < 2:
        raise DataError(f"unseen-api-shift needs numpy>=2.0 (installed: {np.__version__}): on numpy 1.x the removed "
                        "APIs still work and the variant measures nothing; pip install 'numpy>=2'")
    return [build_shift_problem(i, t, np.__version__) for i, t in enumerate(SHIFT_TASKS)]


# ---------------------------------------------------------------- documentation and corpus

def api_names(mod: types.ModuleType | None = None) -> list[str]:
    """Every public API: module-level names in ``__all__`` and public methods as ``Class.method``."""
    mod = mod or load_library()
    names = []
    for name in mod.__all__:
        names.append(name)
        obj = getattr(mod, name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            names += [f"{name}.{m}" for m, v in vars(obj).items() if not m.startswith("_") and callable(v)]
    return names


def resolve_api(mod: types.ModuleType, api: str) -> Any:
    obj: Any = mod
    for part in api.split("."):
        obj = getattr(obj, part)
    return obj


def reference_entries(mod: types.ModuleType | None = None) -> list[dict[str, str]]:
    """One reference entry per API: ``{"api", "signature", "doc"}``."""
    mod = mod or load_library()
    out = []
    for api in api_names(mod):
        obj = resolve_api(mod, api)
        try:
            sig = str(inspect.signature(obj))
        except (TypeError, ValueError):
            sig = ""
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            sig = f"({obj.__mro__[1].__name__})"
        kind = "class" if inspect.isclass(obj) else "data" if not callable(obj) else "function"
        doc = inspect.getdoc(obj) or ""
        if kind == "data":
            sig, doc = "", f"Named reducers: {', '.join(obj)}."
        out.append({"api": api, "kind": kind, "signature": sig, "doc": doc})
    return out


def reference_page() -> str:
    """The library's reference documentation as Markdown (generated from its signatures and docstrings)."""
    mod = load_library()
    lines = [f"# zorbel {mod.__version__} reference", "", inspect.getdoc(mod) or "", ""]
    for e in reference_entries(mod):
        head = f"class zorbel.{e['api']}{e['signature']}" if e["kind"] == "class" else f"zorbel.{e['api']}{e['signature']}"
        lines += [f"## `{head}`", "", e["doc"], ""]
    return "\n".join(lines).rstrip() + "\n"


def corpus() -> list[dict[str, Any]]:
    """The RAG corpus: the library source split by AST (functions, methods, classes, with docstrings and
    examples) and one reference-page document per API."""
    from dorag.data.corpus import from_code, unique_ids

    docs = from_code(LIBRARY, exclude=())
    for d in docs:
        d["meta"]["source"] = "zorbel-source"
    for e in reference_entries():
        head = f"class zorbel.{e['api']}{e['signature']}" if e["kind"] == "class" else f"zorbel.{e['api']}{e['signature']}"
        docs.append({"id": f"zorbel-doc:{e['api']}", "text": f"{head}\n\n{e['doc']}\n",
                     "meta": {"source": "zorbel-reference", "api": e["api"], "kind": e["kind"]}})
    return unique_ids(docs)


def api_doc_ids(api: str) -> list[str]:
    """The corpus documents that document `api`: its source and its reference entry."""
    return [f"zorbel:{api}", f"zorbel-doc:{api}"]


def qrels(problems: list[dict[str, Any]] | None = None) -> dict[str, dict[str, int]]:
    """task_id -> {doc id: 1} for the source and reference documents of every API the task needs."""
    problems = problems or load_problems()
    known = {d["id"] for d in corpus()}
    out: dict[str, dict[str, int]] = {}
    for p in problems:
        rel = {doc: 1 for api in p["meta"]["apis"] for doc in api_doc_ids(api) if doc in known}
        out[p["task_id"]] = rel
    return out


_CALL = re.compile(r"\bzorbel\.([A-Za-z_][A-Za-z0-9_]*)")


def used_apis(solution: str) -> set[str]:
    """The zorbel names a solution references (``zorbel.X``; methods as ``.name(``)."""
    names = set(_CALL.findall(solution))
    names |= {f".{m}" for m in re.findall(r"\.([a-z_][a-z0-9_]*)\(", solution)}
    return names
