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


def _offline_problems():
    return [p for b in ("humaneval", "unseen-api", "unseen-api-shift") for p in load_problems(b)]


def test_every_planted_solution_is_caught_in_every_variant():
    # without its def line, re-indented and re-wrapped, locals renamed, inside a markdown answer
    from dorag.data.planted import VARIANTS, planted_docs

    problems = _offline_problems()
    checker = LeakageChecker(problems)
    missed = [d["id"] for d in planted_docs(problems)
              if not any(f["task_id"] == d["meta"]["task_id"] and f["kind"] == "solution" for f in checker.check(d["text"]))]
    assert missed == []
    assert len(list(planted_docs(problems))) == len(VARIANTS) * len(problems)


def test_real_code_holding_generic_bodies_is_not_flagged():
    # operator.add's body is HumanEval/53's `return x + y`, and typing.ParamSpec's docstring has an example
    # `def add_two(x, y): return x + y`: a one-statement body that common code holds is not a leak there
    import operator
    import typing

    from dorag.experiments.indexing import benchmark_corpus

    docs = from_code(operator.__file__) + from_code(typing.__file__) + list(benchmark_corpus("unseen-api"))
    assert {"operator:add", "typing:ParamSpec"} <= {d["id"] for d in docs}
    assert LeakageChecker(_offline_problems()).scan(docs) == []


def test_the_code_and_statement_tests_each_catch_what_the_text_test_misses():
    problems = humaneval()
    checker = LeakageChecker(problems)
    long_body = problems[0]["canonical_solution"]  # many statements: the code n-gram test
    renamed = long_body.replace("elem", "item").replace("idx", "k").replace("distance", "gap")
    hits = checker.check("```python\n" + renamed + "```")
    assert [(h["task_id"], h["test"]) for h in hits] == [("HumanEval/0", "code")]
    short = {"id": "s", "text": "    return len(s)\n"}  # HumanEval/23, renamed: the statement test, as a whole snippet
    assert [(h["task_id"], h["test"]) for h in checker.check(short["text"])] == [("HumanEval/23", "statements")]
    among_others = "def size(s):\n    s = s.strip()\n    return len(s)\n"  # the idiom inside other code: no leak
    assert checker.check(among_others) == []
