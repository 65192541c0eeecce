"""Supervised fine-tuning examples: loading instruction sets, building docstring<->code pairs, splitting.

On disk an example is one JSONL line that `dorag train` reads, in one of two forms:

- **problem form**, for code generation: ``{"id", "task": "code", "problem": {HumanEval fields: task_id,
  prompt, entry_point, ...}, "target": complete solution code, "docs"?: [retrieved documents], "meta"}``.
  It is rendered by the same functions that render an evaluation prompt (`data.prompts.build_prompt` and
  `training.encoding.render_example`), so training and inference see the same prompt, token for token.
- **messages**, for everything else: ``{"id", "task", "messages": [{"role": "user", ...}, {"role": "assistant",
  ...}], "meta"}``. Instruction sets in their own formats are converted on load: CodeAlpaca (``instruction,
  input, output``), Magicoder-Evol-Instruct (``instruction, response``), and ``prompt, completion`` pairs.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.data.ast_extract import FunctionRecord, dedupe_key, is_useful_docstring
from dorag.data.prompts import docstring_prompt

Example = dict[str, Any]
DocStyle = Literal["google", "numpy", "any"]

# The pre-issue-19 recipe's instruction (task "code-legacy"): kept so that the old adapters can be rebuilt and
# compared; it is not the evaluation prompt.
CODE_INSTRUCTION = "Implement the following Python function. Reply with the complete function in a ```python block."


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


def make_problem_example(ex_id: str, problem: dict[str, Any], target: str, docs: Sequence[dict] | None = None,
                         meta: dict | None = None, source: str = "code") -> Example:
    """A problem-form example: a benchmark-format problem, its complete solution and (optionally) documents."""
    ex: Example = {"id": ex_id, "task": "code", "source": source, "problem": dict(problem), "target": target,
                   "meta": meta or {}}
    if docs:
        ex["docs"] = [dict(d) for d in docs]
    return ex


def _docstring_block(doc: str, indent: str = "    ") -> str:
    return f'{indent}"""{_indent(doc, indent).strip()}\n{indent}"""\n'


def function_body(code: str) -> str | None:
    """The statements of a function after its docstring, as written (None: no docstring, or nothing after it)."""
    try:
        node = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        return None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or len(node.body) < 2:
        return None
    first = node.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return None
    lines = code.splitlines(keepends=True)
    return "".join(lines[node.body[1].lineno - 1:])


def problem_from_record(rec: FunctionRecord, imports: Sequence[str] | None = None) -> tuple[dict[str, Any], str] | None:
    """A HumanEval-format problem (imports, signature and docstring; a method under its class header) and the
    complete solution (the problem's code followed by the function's own body), or None when the function has
    no docstring or no body after it. `imports` default to the module's imports that the code uses."""
    from dorag.data.corpus import used_imports

    body = function_body(rec.code)
    if body is None or not rec.docstring:
        return None
    imports = list(imports) if imports is not None else used_imports(rec.imports, rec.code + (rec.class_context or ""))
    head = ("\n".join(imports) + "\n\n\n") if imports else ""
    stub = f"{rec.signature}\n{_docstring_block(rec.docstring)}"
    if rec.class_context:
        cls = rec.class_context.rstrip() + "\n"
        prompt = head + cls + _indent(stub) + "\n"
        target = prompt + _indent(body.rstrip("\n")) + "\n"
    else:
        prompt = head + stub
        target = prompt + body.rstrip("\n") + "\n"
    problem = {"task_id": rec.id, "prompt": prompt, "entry_point": rec.name}
    return problem, target


def code_from_docstring(rec: FunctionRecord) -> Example | None:
    """Docstring + signature (with imports and class as context) -> the function, in problem form: rendered
    with the evaluation prompt."""
    made = problem_from_record(rec)
    if made is None:
        return None
    problem, target = made
    return make_problem_example(f"code:{rec.id}", problem, target, meta={"source": rec.path, "qualname": rec.qualname},
                                source="stdlib-docstring")


def code_from_docstring_legacy(rec: FunctionRecord) -> Example:
    """The pre-issue-19 recipe (task code-legacy): CODE_INSTRUCTION and a bare fence, not the evaluation prompt."""
    stub = f'{rec.signature}\n    """{_indent(rec.docstring or "").strip()}\n    """\n'
    user = f"{CODE_INSTRUCTION}\n```python\n{_context(rec)}{stub}```"
    return make_example(f"code:{rec.id}", "code", user, f"```python\n{rec.code}```",
                        {"source": rec.path, "qualname": rec.qualname})


def docstring_from_code(rec: FunctionRecord) -> Example:
    """The function without its docstring (with context) -> the docstring, under the docstring task's own prompt
    (`data.prompts.docstring_prompt`, as `dorag docstring` asks it), with the style hint of the target's style."""
    style = docstring_style(rec.docstring or "")
    prompt = docstring_prompt(f"{_context(rec)}{rec.code_without_docstring}", style)
    return make_example(f"doc:{rec.id}", "docstring", prompt.messages[-1][1], rec.docstring or "",
                        {"source": rec.path, "qualname": rec.qualname, "style": style})


_GOOGLE = re.compile(r"^\s*(Args|Arguments|Returns|Raises|Yields|Attributes|Example|Examples):\s*$", re.MULTILINE)
_NUMPY = re.compile(r"^\s*(Parameters|Returns|Raises|Yields|Attributes|Examples)\s*\n\s*-{3,}\s*$", re.MULTILINE)


def docstring_style(doc: str) -> Literal["google", "numpy", "plain"]:
    """Which convention a docstring follows (kept as written; used to report and to filter by style)."""
    if _NUMPY.search(doc):
        return "numpy"
    if _GOOGLE.search(doc):
        return "google"
    return "plain"


def pairs_from_functions(records: Iterable[FunctionRecord], task: Literal["code", "code-legacy", "docstring"],
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
        if task == "code":
            ex = code_from_docstring(rec)
            if ex is None:
                dropped["no_body"] = dropped.get("no_body", 0) + 1
                continue
        else:
            ex = code_from_docstring_legacy(rec) if task == "code-legacy" else docstring_from_code(rec)
        seen_doc.add(kd)
        seen_code.add(kc)
        out.append(ex)
    return out, dropped


def convert_record(rec: dict[str, Any], where: str, task: str, idx: int) -> Example:
    if "problem" in rec or "target" in rec:
        problem, target = rec.get("problem"), rec.get("target")
        if not isinstance(problem, dict) or not isinstance(target, str):
            raise DataError(f"{where}: a problem-form example needs problem (an object) and target (a string)")
        missing = [f for f in ("task_id", "prompt", "entry_point") if not isinstance(problem.get(f), str)]
        if missing:
            raise DataError(f"{where}: problem is missing field(s) {', '.join(missing)}")
        docs = rec.get("docs") or []
        if not isinstance(docs, list) or not all(isinstance(d, dict) and isinstance(d.get("text"), str) and "id" in d
                                                 for d in docs):
            raise DataError(f"{where}: docs must be a list of {{id, text, meta}} documents")
        return {**rec, "id": str(rec.get("id", idx)), "task": rec.get("task", task)}
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
        if not answer_of(ex).strip():
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


def answer_of(ex: Example) -> str:
    return ex["target"] if "problem" in ex else ex["messages"][-1]["content"]


def example_text(ex: Example) -> str:
    """All the text of an example (prompt, documents, answer): what decontamination checks."""
    if "problem" in ex:
        return "\n".join([ex["problem"]["prompt"], ex["target"], *(d["text"] for d in ex.get("docs") or ())])
    return "\n".join(m["content"] for m in ex["messages"])
