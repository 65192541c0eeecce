"""Supervised fine-tuning examples: loading instruction sets, building docstring<->code pairs, splitting.

On disk an example is one JSONL line in the chat format that `dorag train` reads:
``{"id", "task", "messages": [{"role": "user", ...}, {"role": "assistant", ...}], "meta": {...}}``.
Instruction sets in their own formats are converted on load: CodeAlpaca (``instruction, input, output``),
Magicoder-Evol-Instruct (``instruction, response``), and ``prompt, completion`` pairs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.data.ast_extract import FunctionRecord, dedupe_key, is_useful_docstring

Example = dict[str, Any]
DocStyle = Literal["google", "numpy", "any"]

CODE_INSTRUCTION = "Implement the following Python function. Reply with the complete function in a ```python block."
DOC_INSTRUCTION = "Write the docstring for the following Python function. Reply with the docstring text only."


def make_example(ex_id: str, task: str, user: str, assistant: str, meta: dict | None = None) -> Example:
    return {"id": ex_id, "task": task,
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "meta": meta or {}}


def _context(rec: FunctionRecord) -> str:
    parts = []
    if rec.imports:
        parts.append("\n".join(rec.imports[:15]))
    if rec.class_context:
        parts.append(rec.class_context + "\n    ...")
    return ("\n\n".join(parts) + "\n\n") if parts else ""


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else line for line in text.splitlines())


def code_from_docstring(rec: FunctionRecord) -> Example:
    """Docstring + signature (with imports and class as context) -> the function's code."""
    stub = f'{rec.signature}\n    """{_indent(rec.docstring or "").strip()}\n    """\n'
    user = f"{CODE_INSTRUCTION}\n```python\n{_context(rec)}{stub}```"
    return make_example(f"code:{rec.id}", "code", user, f"```python\n{rec.code}```",
                        {"source": rec.path, "qualname": rec.qualname})


def docstring_from_code(rec: FunctionRecord) -> Example:
    """The function without its docstring (with context) -> the docstring."""
    user = f"{DOC_INSTRUCTION}\n```python\n{_context(rec)}{rec.code_without_docstring}```"
    return make_example(f"doc:{rec.id}", "docstring", user, rec.docstring or "",
                        {"source": rec.path, "qualname": rec.qualname})


_GOOGLE = re.compile(r"^\s*(Args|Arguments|Returns|Raises|Yields|Attributes|Example|Examples):\s*$", re.MULTILINE)
_NUMPY = re.compile(r"^\s*(Parameters|Returns|Raises|Yields|Attributes|Examples)\s*\n\s*-{3,}\s*$", re.MULTILINE)


def docstring_style(doc: str) -> Literal["google", "numpy", "plain"]:
    """Which convention a docstring follows (kept as written; used to report and to filter by style)."""
    if _NUMPY.search(doc):
        return "numpy"
    if _GOOGLE.search(doc):
        return "google"
    return "plain"


def pairs_from_functions(records: Iterable[FunctionRecord], task: Literal["code", "docstring"],
                         min_words: int = 4, max_code_chars: int = 4000) -> tuple[list[Example], dict[str, int]]:
    """Training pairs from extracted functions, with trivial, auto-generated and duplicate docstrings and
    private or oversized functions filtered out. Returns (examples, counts of what was dropped and why)."""
    seen_doc: set[str] = set()
    seen_code: set[str] = set()
    dropped = {"no_or_trivial_docstring": 0, "duplicate": 0, "too_long": 0, "private": 0}
    out = []
    for rec in records:
        if rec.name.startswith("_") and not (rec.name.startswith("__") and rec.name.endswith("__")):
            dropped["private"] += 1
            continue
        if not is_useful_docstring(rec.docstring, rec.name, min_words=min_words):
            dropped["no_or_trivial_docstring"] += 1
            continue
        if len(rec.code) > max_code_chars:
            dropped["too_long"] += 1
            continue
        kd, kc = dedupe_key(rec.docstring or ""), dedupe_key(rec.code_without_docstring)
        if kd in seen_doc or kc in seen_code:
            dropped["duplicate"] += 1
            continue
        seen_doc.add(kd)
        seen_code.add(kc)
        out.append(code_from_docstring(rec) if task == "code" else docstring_from_code(rec))
    return out, dropped


def convert_record(rec: dict[str, Any], where: str, task: str, idx: int) -> Example:
    if "messages" in rec:
        msgs = rec["messages"]
        if (not isinstance(msgs, list) or len(msgs) < 2 or msgs[-1].get("role") != "assistant"
                or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs)):
            raise DataError(f"{where}: messages must be a list of {{role, content}} ending with the assistant turn")
        return {"id": str(rec.get("id", idx)), "task": rec.get("task", task), "messages": msgs, "meta": rec.get("meta", {})}
    if "instruction" in rec and ("output" in rec or "response" in rec):
        user = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
        return make_example(str(rec.get("id", idx)), task, user, rec.get("output", rec.get("response", "")))
    if "prompt" in rec and "completion" in rec:
        return make_example(str(rec.get("id", idx)), task, rec["prompt"], rec["completion"])
    raise DataError(f"{where}: unknown record format (fields: {', '.join(sorted(rec)) or 'none'}); expected "
                    "messages, instruction+output (CodeAlpaca), instruction+response (Magicoder) or prompt+completion")


def load_examples(path: str | Path, task: str = "code") -> list[Example]:
    """Examples from a JSONL (or a JSON list, as CodeAlpaca ships) in any supported format."""
    import json

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training data file not found")
    if path.suffix == ".json":
        try:
            rows = list(enumerate(json.loads(path.read_text(encoding="utf-8")), start=1))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    elif path.suffix == ".parquet":
        from dorag.core.require import require

        pq = require("pyarrow.parquet", extra="data", package="pyarrow")
        rows = list(enumerate(pq.read_table(path).to_pylist(), start=1))
    else:
        rows = list(iter_jsonl_numbered(path))
    out = []
    for line, rec in rows:
        ex = convert_record(rec, f"{path}:{line}", task, line)
        if not ex["messages"][-1]["content"].strip():
            raise DataError(f"{path}:{line}: empty assistant response")
        out.append(ex)
    if not out:
        raise DataError(f"{path}: no training examples (empty dataset)")
    return out


def split(examples: Sequence[Example], eval_fraction: float = 0.05, seed: int = 0,
          min_eval: int = 1) -> tuple[list[Example], list[Example]]:
    """A seeded random train/eval split; at least `min_eval` eval examples when there are two or more."""
    items = list(examples)
    random.Random(seed).shuffle(items)
    n_eval = max(min_eval, int(round(len(items) * eval_fraction))) if len(items) > 1 else 0
    return items[n_eval:], items[:n_eval]


def example_text(ex: Example) -> str:
    return "\n".join(m["content"] for m in ex["messages"])


def with_retrieved_context(examples: Sequence[Example], retrieve: Callable[[str, int], list[str]], k: int = 3,
                           max_context_chars: int = 2000, exclude_self: bool = True) -> list[Example]:
    """Retrieval-aware fine-tuning: put the top-k retrieved documents in front of each user turn, in the
    same "Relevant code and documentation" frame the RAG prompts use, so the adapter learns to use context.

    `retrieve(query, k)` is any retriever (passed in: the data layer does not import retrieval). A document
    identical to the example's own answer is dropped, so the model cannot learn to copy its target.
    """
    out = []
    for ex in examples:
        user = ex["messages"][-2]["content"]
        answer = ex["messages"][-1]["content"]
        docs = [d for d in retrieve(user, k + 1) if not (exclude_self and d.strip() and d.strip() in answer)][:k]
        context, used = [], 0
        for d in docs:
            if used + len(d) > max_context_chars:
                break
            context.append(d)
            used += len(d)
        new_user = (f"Relevant code and documentation:\n" + "\n\n".join(context) + f"\n\n{user}") if context else user
        msgs = [*ex["messages"][:-2], {"role": "user", "content": new_user}, ex["messages"][-1]]
        out.append({**ex, "messages": msgs, "meta": {**ex.get("meta", {}), "n_context": len(context)}})
    return out
