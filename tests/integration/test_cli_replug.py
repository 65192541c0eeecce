"""`dorag train-retriever --method replug-lsr` end to end on tiny random models, its output used by
`dorag index build`, and its bad inputs as one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.cli.main import main
from dorag.core.io import read_json, write_jsonl

pytestmark = pytest.mark.integration

WORDS = ["sort", "merge", "parse", "encode", "decode", "hash", "split", "join", "read", "write", "send", "fetch"]


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    out = tmp_path / "synth"
    write_jsonl(out / "train.jsonl", [
        {"query": f"Apply {w} to every item and keep the first results.\ndef {w}_items(items, limit):",
         "positive": f"out = [{w}(x) for x in items]\nreturn out[:limit]\n", "category": "hybrid",
         "relation": "docstring+signature->body", "query_doc_id": f"m:{w}_items", "positive_id": f"m:{w}_items#body"}
        for w in WORDS])
    write_jsonl(out / "datastore.jsonl", [
        {"id": f"lib:{w}", "text": f"def {w}(x):\n    \"\"\"The {w} of one value.\"\"\"\n    return x.{w}()\n", "meta": {}}
        for w in WORDS])
    return out


def args(data: Path, out: Path, embedder: Path, teacher: Path | str) -> list[object]:
    return ["train-retriever", "--method", "replug-lsr", "--data", data / "train.jsonl", "--datastore",
            data / "datastore.jsonl", "--embedder", embedder, "--teacher-model", teacher, "--rag-k", 3,
            "--max-steps", 2, "--batch-size", 4, "--output-dir", out, "training.max_seq_length=32",
            "replug.refresh_steps=1", "replug.doc_budget_tokens=48", "replug.max_target_tokens=16",
            "data.eval_fraction=0.25"]


def test_train_replug_lsr_and_index_with_the_result(capsys, tmp_path, data, tiny_embedder_dir, tiny_model_dir):
    code, stdout, err = run(capsys, *args(data, tmp_path / "run", tiny_embedder_dir, tiny_model_dir))
    assert code == 0, err
    result = json.loads(stdout)
    assert result["steps"] == 2 and set(result["before"]) == {"recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10"}
    assert "s/step" in err and "2 datastore refreshes" in err
    summary = read_json(tmp_path / "run" / "train_summary.json")
    assert len(summary["loss_curve"]) == 2 and summary["refreshes"] == [0, 1]
    code, _, err = run(capsys, "index", "build", "--corpus", data / "datastore.jsonl", "--out", tmp_path / "idx",
                       "--embedder", result["model_dir"])
    assert code == 0, err
    code, stdout, err = run(capsys, "retrieve", "sort every item", "--index", tmp_path / "idx", "-k", 2, "--json")
    assert code == 0, err
    assert len(json.loads(stdout.splitlines()[0])["hits"]) == 2


def test_bad_inputs_are_one_line_errors(capsys, tmp_path, data, tiny_embedder_dir, tiny_model_dir, json_server):
    def error(*extra: object, teacher: object = tiny_model_dir) -> str:
        code, _, err = run(capsys, *args(data, tmp_path / "bad", tiny_embedder_dir, teacher), *extra)
        assert code == 1 and "Traceback" not in err
        return err.strip().splitlines()[-1]

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert error("--data", empty).startswith(f"error: {empty}: no pairs")
    copies = tmp_path / "copies.jsonl"
    rows = [json.loads(l) for l in (data / "train.jsonl").read_text().splitlines()]
    write_jsonl(copies, [{"id": f"c{i}", "text": r["query"] + "\n    pass\n"} for i, r in enumerate(rows)])
    assert "training queries (100.0%) occur in the datastore" in error("--datastore", copies)

    url = json_server(lambda body: {"choices": [{"text": "pass", "finish_reason": "stop"}]})  # no log-probs
    line = error("--teacher", "openai", "--teacher-base-url", url, teacher="served")
    assert line.startswith("error: teacher endpoint http://127.0.0.1:") and "serve the teacher with vLLM" in line
    assert "teacher_base_url: required" in error("--teacher", "openai")
