"""The leakage check flags a corpus holding HumanEval's solutions and passes clean code."""

from __future__ import annotations

from dorag.data.corpus import from_code
from dorag.data.leakage import LeakageChecker, drop_leaking
from dorag.evaluation.benchmarks import load_problems


def humaneval():
    return load_problems("humaneval", None, None, None)


def test_corpus_with_humaneval_solutions_is_flagged_and_clean_code_is_not(tmp_path):
    problems = humaneval()
    leaked = [{"id": f"leak/{p['task_id']}", "text": p["prompt"] + p["canonical_solution"]} for p in problems]
    import json
    import textwrap

    clean = from_code(json.__file__.rsplit("/", 1)[0])  # the json package: real code, no benchmark inside
    findings = LeakageChecker(problems).scan(leaked + clean)
    flagged = {f["doc_id"] for f in findings}
    assert flagged == {d["id"] for d in leaked}
    assert {f["task_id"] for f in findings} == {p["task_id"] for p in problems}
    kinds = {(f["doc_id"], f["kind"]) for f in findings}
    assert all((f"leak/{p['task_id']}", "prompt") in kinds for p in problems)
    assert drop_leaking(leaked + clean, findings) == clean
    # a solution body pasted into another function (re-indented, renamed wrapper) is still found
    p = problems[10]
    body = textwrap.dedent(p["canonical_solution"])
    pasted = {"id": "pasted", "text": "def helper(string):\n" + textwrap.indent(body, "    ")}
    hits = LeakageChecker(problems).check(pasted["text"])
    assert any(h["task_id"] == p["task_id"] and h["kind"] == "solution" for h in hits)


def test_near_duplicate_prompt_is_flagged_but_a_shared_idiom_is_not():
    problems = humaneval()
    p = problems[0]
    edited = p["prompt"].replace("Check if", "Determine whether").replace("numbers", "values", 1)
    hits = LeakageChecker(problems).check(edited)
    assert any(h["task_id"] == p["task_id"] and h["kind"] == "prompt" and not h["exact"] for h in hits)
    idiom = "def f(xs):\n    return sorted(set(xs))\n"
    assert LeakageChecker(problems).check(idiom) == []
