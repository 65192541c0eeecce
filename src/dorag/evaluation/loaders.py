"""Loaders that turn official benchmark formats into HumanEval-format problems.

- MBPP: the Google Research files (``mbpp.jsonl``: text, code, task_id, test_setup_code, test_list,
  challenge_test_list; ``sanitized-mbpp.json``: prompt, code, task_id, test_imports, test_list), or the
  hub dataset ``google-research-datasets/mbpp`` when online. Prompts follow EvalPlus' MBPP+ convention:
  a module docstring with the description and the first test, so any HumanEval-style prompt builder works.
- DS-1000: the official ``ds1000.jsonl`` (prompt, reference_code, metadata, code_context). Scoring runs the
  official harness: ``code_context`` + ``test_execution(code)`` (+ ``test_string(code)`` when defined).

Neither set is packaged on PyPI; offline they load from a local file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import read_records
from dorag.data.hub import hub_rows as _hub_rows
from dorag.evaluation.benchmarks import Problem

MBPP_HUB_ID = "google-research-datasets/mbpp"
# The split of the original paper: 11-510 test, 511-600 validation, 601-974 train, 1-10 few-shot prompts.
MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return read_records(path, "problems")


def _entry_point(code: str, tests: list[str], where: str) -> str:
    called = re.findall(r"assert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\(|abs\()?\s*([A-Za-z_]\w*)\s*\(", " ".join(tests))
    defined = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", code, re.MULTILINE)
    for name in called:
        if name in defined:
            return name
    if defined:
        return defined[-1]
    raise DataError(f"{where}: cannot find the function under test (no `def` in code)")


def mbpp_record_to_problem(rec: dict[str, Any], where: str) -> Problem:
    """One MBPP record (full or sanitized) in HumanEval format."""
    text = rec.get("text") or rec.get("prompt")
    missing = [f for f, v in (("text/prompt", text), ("code", rec.get("code")), ("task_id", rec.get("task_id")),
                              ("test_list", rec.get("test_list"))) if v in (None, "", [])]
    if missing:
        raise DataError(f"{where}: MBPP record is missing {', '.join(missing)}")
    tests = list(rec["test_list"])
    if not all(isinstance(t, str) for t in tests):
        raise DataError(f"{where}: test_list must be a list of strings")
    imports = list(rec.get("test_imports") or [])
    code = rec["code"].replace("\r\n", "\n")
    entry = _entry_point(code, tests, where)
    body = "\n".join(["def check(candidate):", *[f"    {line}" for line in imports + tests], "    return True"])
    return {
        "task_id": f"Mbpp/{rec['task_id']}",
        "prompt": f'"""\n{text.strip()}\n{tests[0]}\n"""\n',
        "canonical_solution": code,
        "test": body,
        "entry_point": entry,
        "setup_code": rec.get("test_setup_code") or "",
        "meta": {"source": "mbpp", "mbpp_task_id": rec["task_id"]},
    }


def load_mbpp(path: str | Path | None = None, variant: str = "sanitized", split: str = "test") -> list[Problem]:
    """MBPP in HumanEval format from a local official file, else from the hub."""
    if variant not in ("sanitized", "full"):
        raise DataError(f"unknown MBPP variant {variant!r}; choose sanitized or full")
    if split not in MBPP_SPLITS:
        raise DataError(f"unknown MBPP split {split!r}; choose one of {', '.join(MBPP_SPLITS)}")
    if path is not None:
        rows = _records(Path(path))
        wanted = MBPP_SPLITS[split]
        rows = [(line, r) for line, r in rows if int(r.get("task_id", -1)) in wanted]
        if not rows:
            raise DataError(f"{path}: no MBPP task ids in the {split} split ({wanted.start}-{wanted.stop - 1})")
        origin = str(path)
    else:
        rows = _hub_rows(MBPP_HUB_ID, variant, split)
        origin = f"{MBPP_HUB_ID}:{variant}/{split}"
    return [mbpp_record_to_problem(r, f"{origin}:{line}") for line, r in rows]


def ds1000_record_to_problem(rec: dict[str, Any], where: str) -> Problem:
    missing = [f for f in ("prompt", "reference_code", "metadata", "code_context") if f not in rec]
    if missing:
        raise DataError(f"{where}: DS-1000 record is missing {', '.join(missing)}")
    meta = rec["metadata"]
    if "test_execution(" not in rec["code_context"]:
        raise DataError(f"{where}: code_context has no test_execution(); not the official DS-1000 format")
    return {
        "task_id": f"DS1000/{meta.get('problem_id', where)}",
        "prompt": rec["prompt"],
        "canonical_solution": rec["reference_code"],
        "test": rec["code_context"],
        "entry_point": "test_execution",
        "harness": "ds1000",
        "completion_kind": "snippet",
        "stop": ["</code>", "# SOLUTION END"],
        "meta": {"source": "ds1000", "library": meta.get("library", "unknown"),
                 "perturbation_type": meta.get("perturbation_type")},
    }


def load_ds1000(path: str | Path | None = None) -> list[Problem]:
    """DS-1000 from the official ds1000.jsonl(.gz), else the hub (``xlangai/DS-1000``)."""
    if path is not None:
        rows, origin = _records(Path(path)), str(path)
    else:
        rows, origin = _hub_rows("xlangai/DS-1000", "default", "test"), "xlangai/DS-1000"
    return [ds1000_record_to_problem(r, f"{origin}:{line}") for line, r in rows]


def ds1000_program(problem: Problem, completion: str) -> str:
    """The official DS-1000 test program for one solution."""
    context = problem["test"]
    program = f"{context}\ncode = {completion!r}\ntest_execution(code)\n"
    if "test_string(" in context:
        program += "test_string(code)\n"
    return program
