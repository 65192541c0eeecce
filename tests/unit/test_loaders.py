"""MBPP and DS-1000 loaders on fixtures in the official formats; their reference solutions pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.evaluation.benchmarks import load_problems
from dorag.evaluation.evaluate import build_program, summarize
from dorag.evaluation.sandbox import Sandbox, SandboxConfig

FIX = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(workers=2, timeout_s=10))


@pytest.mark.parametrize("name, path, n", [("mbpp-full", "mbpp_full.jsonl", 4), ("mbpp", "mbpp_sanitized.json", 3)])
def test_mbpp_canonical_solutions_pass_and_wrong_ones_fail(sandbox, name, path, n):
    problems = load_problems(name, benchmark_path=str(FIX / path))
    assert len(problems) == n and all(p["task_id"].startswith("Mbpp/") for p in problems)
    good = sandbox.run_many([build_program(p, p["canonical_solution"]) for p in problems])
    assert [r.status.value for r in good] == ["PASS"] * n, [r.detail for r in good]
    bad = sandbox.run_many([build_program(p, f"def {p['entry_point']}(*a):\n    return None\n") for p in problems])
    assert not any(r.passed for r in bad)


def test_mbpp_prompt_is_a_python_docstring_with_the_first_test():
    p = load_problems("mbpp", benchmark_path=str(FIX / "mbpp_sanitized.json"))[1]
    assert p["prompt"].startswith('"""\nWrite a function that returns the perimeter')
    assert "assert square_perimeter(10)==40" in p["prompt"]
    assert p["entry_point"] == "square_perimeter"
    compile(p["prompt"], "prompt", "exec")


def test_mbpp_setup_code_runs_first(sandbox):
    p = [q for q in load_problems("mbpp-full", benchmark_path=str(FIX / "mbpp_full.jsonl")) if q["entry_point"] == "scale"][0]
    assert p["setup_code"] == "FACTOR = 3"
    assert build_program(p, p["canonical_solution"]).startswith("FACTOR = 3\n")


def test_mbpp_bad_record_is_named(tmp_path):
    bad = tmp_path / "mbpp.jsonl"
    bad.write_text(json.dumps({"task_id": 11, "text": "x", "code": "def f(): pass"}) + "\n")
    with pytest.raises(DataError, match=r"mbpp.jsonl:1: MBPP record is missing test_list"):
        load_problems("mbpp-full", benchmark_path=str(bad))


def test_ds1000_reference_passes_the_official_harness_and_breaks_down_by_library(sandbox):
    problems = load_problems("ds1000", benchmark_path=str(FIX / "ds1000.jsonl"))
    p = problems[0]
    assert p["task_id"] == "DS1000/0" and p["meta"]["library"] == "Numpy"
    ok = sandbox.run(build_program(p, p["canonical_solution"]))
    assert ok.passed, ok.detail
    wrong = sandbox.run(build_program(p, "result = a.sum(axis=1)\n"))
    assert not wrong.passed
    looped = sandbox.run(build_program(p, "result = sum(a[i] for i in range(len(a)))\n"))
    assert not looped.passed  # right values, but test_string forbids the loop
    results = [{"task_id": p["task_id"], "passed": True, "status": "PASS"}]
    assert summarize(results, problems, (1,))["by_library"]["Numpy"]["pass@1"]["value"] == 1.0


def test_ds1000_rejects_a_non_official_record(tmp_path):
    bad = tmp_path / "ds.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "reference_code": "r", "metadata": {}, "code_context": "x = 1"}) + "\n")
    with pytest.raises(DataError, match="no test_execution"):
        load_problems("ds1000", benchmark_path=str(bad))


def test_offline_without_a_path_gives_a_one_line_hint(monkeypatch):
    import dorag.evaluation.loaders as loaders

    def no_hub(*a, **k):
        raise DataError("could not load google-research-datasets/mbpp from the Hugging Face Hub; offline, pass the official file with --benchmark-path")

    monkeypatch.setattr(loaders, "_hub_rows", no_hub)
    with pytest.raises(DataError, match="--benchmark-path"):
        load_problems("mbpp")
