"""run_generate: samples format, resume after an interruption, repair of a torn line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.config import from_dict
from dorag.core.io import read_jsonl
from dorag.experiments.generate import GenerateConfig, completed_tasks, run_generate
from dorag.models.generator import Completion


class CountingGenerator:
    """A deterministic fake generator that records which prompts it was asked for."""

    name = "fake"
    tokenizer = None

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, prompts, params, progress=None):
        self.calls.append(len(prompts))
        return [[Completion(text="def f():\n    return 1\n```", n_tokens=5, finish_reason="stop")] * params.n
                for _ in prompts]


def _cfg(problems_file: Path, out: Path, **extra) -> GenerateConfig:
    return from_dict(GenerateConfig, {"problems": str(problems_file), "out": str(out), **extra})


def test_samples_file_has_humaneval_fields(problems_file, tmp_path):
    out = tmp_path / "s.jsonl"
    res = run_generate(_cfg(problems_file, out), CountingGenerator())
    rows = read_jsonl(out)
    assert res.n_generated == 3 and [r["task_id"] for r in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert {"task_id", "completion", "n_tokens", "finish_reason"} <= rows[0].keys()


def test_resume_skips_done_tasks_and_regenerates_partial_ones(problems_file, tmp_path):
    out = tmp_path / "s.jsonl"
    cfg = _cfg(problems_file, out, generation={"n": 2})
    # A run killed after writing task 0 fully and task 1 half, with a torn final line.
    out.write_text(
        json.dumps({"task_id": "HumanEval/0", "completion": "a"}) + "\n"
        + json.dumps({"task_id": "HumanEval/0", "completion": "b"}) + "\n"
        + json.dumps({"task_id": "HumanEval/1", "completion": "c"}) + "\n"
        + '{"task_id": "HumanEval/1", "compl'
    )
    gen = CountingGenerator()
    res = run_generate(cfg, gen, chunk_size=8)
    assert res.n_skipped == 1 and gen.calls == [2]
    rows = read_jsonl(out)
    assert [r["task_id"] for r in rows] == ["HumanEval/0"] * 2 + ["HumanEval/1"] * 2 + ["HumanEval/2"] * 2
    assert [r["completion"] for r in rows[:2]] == ["a", "b"]  # finished work is kept as it was
    # A second run has nothing left to do.
    again = CountingGenerator()
    assert run_generate(cfg, again).n_generated == 0 and again.calls == []


def test_completed_tasks_counts_per_task(tmp_path):
    out = tmp_path / "s.jsonl"
    out.write_text("".join(json.dumps({"task_id": t}) + "\n" for t in ["a", "a", "b"]))
    assert completed_tasks(out, 2) == {"a"}
    assert [r["task_id"] for r in read_jsonl(out)] == ["a", "a"]


def test_generation_on_tiny_model_writes_runnable_shape(tiny_generator, problems_file, tmp_path):
    out = tmp_path / "s.jsonl"
    cfg = _cfg(problems_file, out, generation={"max_new_tokens": 8, "batch_size": 2})
    res = run_generate(cfg, tiny_generator)
    rows = read_jsonl(out)
    assert res.n_generated == 3 and len(rows) == 3
    assert all(isinstance(r["completion"], str) and r["n_tokens"] <= 8 for r in rows)
    assert res.n_tokens == sum(r["n_tokens"] for r in rows)


@pytest.mark.parametrize("bad", [{"generation": {"n": 0}}, {"limit": 0}])
def test_invalid_values_are_config_errors(problems_file, tmp_path, bad):
    from dorag.core.errors import ConfigError

    with pytest.raises(ConfigError):
        _cfg(problems_file, tmp_path / "s.jsonl", **bad)
