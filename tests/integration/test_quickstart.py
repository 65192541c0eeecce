"""`dorag quickstart` end to end on a tiny model: the six conditions, the report, and a re-run that redoes nothing."""

from __future__ import annotations

import pytest

from dorag.cli.main import main
from dorag.core.io import read_json

pytestmark = pytest.mark.integration


def test_quickstart_runs_the_grid_and_reruns_without_work(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "qs"
    args = ["quickstart", "--model", str(tiny_model_dir), "--limit", "2", "--out", str(out),
            "benchmarks.unseen-api.limit=2", "generation.max_new_tokens=8", "data.limit=24",
            "train.training.max_steps=2", "train.training.max_seq_len=1024", "train.peft.r=4",
            "indexes.stdlib.build.sources=[package:json]", "data.sources=[package:json]",
            "data.no_docs_sources=[package:email]", "data.decontaminate=[humaneval]"]
    assert main(args) == 0, capsys.readouterr().err
    stdout, err = capsys.readouterr()
    ablation = read_json(out / "ablation.json")
    assert len(ablation["cells"]) == 12 and set(read_json(out / "metrics.json")) == {"humaneval", "unseen-api"}
    assert "| dora_rag |" in stdout.replace("| humaneval | dora_rag |", "| dora_rag |")  # the results table
    assert "is dora_rag" in stdout and "| adapter training |" in stdout and "report:" in err
    assert ablation["retrieval"]["unseen-api"]["metrics"]["recall@5"] > 0  # Unseen-API has API judgements
    cells = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")}
    assert main(args) == 0
    stdout, err = capsys.readouterr()
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/cell.json")} == cells
    assert "16 of 16 units already done" in err  # the data is not needed once the adapters exist and "loading" not in err
