"""`dorag quickstart` end to end on a tiny model: report written, re-run resumes without regenerating."""

from __future__ import annotations

import time

import pytest

from dorag.cli.main import main
from dorag.core.io import read_jsonl

pytestmark = pytest.mark.integration


def test_quickstart_runs_and_reruns_fast(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "qs"
    args = ["quickstart", "--model", str(tiny_model_dir), "--limit", "3", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "| baseline |" in report and "HumanEval, 3 tasks" in report
    samples = out / "humaneval-baseline" / "samples.jsonl"
    results = read_jsonl(out / "humaneval-baseline" / "samples_results.jsonl")
    assert len(read_jsonl(samples)) == 3 and len(results) == 3
    before = samples.read_bytes()
    t0 = time.perf_counter()
    assert main(args) == 0
    assert time.perf_counter() - t0 < 20  # nothing regenerated or re-run
    assert samples.read_bytes() == before
    assert "(3 already done)" in capsys.readouterr().err
