"""dorag data synth -> train-retriever -> index build/evaluate with the trained embedder, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dorag.cli.main import main
from dorag.core.io import read_json, read_jsonl

pytestmark = pytest.mark.integration

DOCS = {  # distinct docstrings: templated ones would be near-duplicate queries, which synth refuses
    "sort": "Order the rows by their timestamp, newest first.",
    "merge": "Combine two sorted sequences into one without copying twice.",
    "parse": "Read key=value lines from a configuration file into a mapping.",
    "encode": "Turn text into URL-safe base64 bytes for transport.",
    "decode": "Recover the original string from its percent-escaped form.",
    "split": "Cut a long sequence into chunks of a given size.",
    "join": "Glue path fragments together with the platform separator.",
    "fetch": "Download a page over HTTP and return its body as text.",
    "cache": "Remember results of expensive calls in an LRU dictionary.",
    "retry": "Call a flaky function again after an exponential backoff delay.",
    "pack": "Serialise integers into a compact little-endian byte string.",
    "scan": "Walk a directory tree and yield every matching file name.",
}


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A package of documented functions that call a shared helper."""
    root = tmp_path / "toolkit"
    root.mkdir()
    (root / "__init__.py").write_text("")
    funcs = ['def validate(items, kind):\n    """Reject empty inputs before any operation runs on them."""\n'
             '    if not items:\n        raise ValueError(kind)\n    return list(items)\n']
    for i, (verb, doc) in enumerate(DOCS.items()):
        funcs.append(f'def {verb}_records(records, limit, strict):\n'
                     f'    """{doc}"""\n'
                     f'    rows = validate(records, "{verb}")\n    done = [r for r in rows[:limit] if r]\n'
                     f'    return len(done) + {i}\n')
    (root / "ops.py").write_text("\n\n".join(funcs))
    return root


def test_synth_train_and_use_the_trained_embedder(capsys, tmp_path, source, tiny_embedder_dir):
    out = tmp_path / "synth"
    code, stdout, err = run(capsys, "data", "synth", "--corpus", source, "--out", out, "--held-out", "0.3",
                            "--categories", "text2code,code2text,hybrid", "--seed", "1")
    assert code == 0, err
    assert "text2code" in stdout and "dropped:" in stdout and f"to {out}" in stdout
    report = read_json(out / "report.json")
    assert report["n_train"] + report["n_heldout"] == len(read_jsonl(out / "train.jsonl")) + len(read_jsonl(out / "heldout.jsonl"))
    assert report["n_heldout"] >= 1 and (out / "qrels" / "test.tsv").is_file()

    run_dir = tmp_path / "run"
    code, stdout, err = run(capsys, "train-retriever", "--data", out, "--embedder", tiny_embedder_dir, "--max-steps", 2,
                            "--batch-size", 4, "--output-dir", run_dir, "training.eval_steps=1", "training.save_steps=1",
                            "training.max_seq_length=64")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["steps"] == 2 and set(result["before"]) == {"recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10"}
    assert "held-out after:" in err and Path(result["model_dir"]).is_dir()

    idx = tmp_path / "idx"
    code, _, err = run(capsys, "index", "build", "--corpus", out / "corpus.jsonl", "--out", idx,
                       "--embedder", result["model_dir"])
    assert code == 0, err
    code, stdout, err = run(capsys, "index", "evaluate", "--index", idx, "--queries", out / "queries.jsonl",
                            "--qrels", out / "qrels" / "test.tsv")
    assert code == 0, err
    # the CLI's figure is this index's recall: its own top 10 for each judged query, counted by hand
    from dorag.experiments.indexing import read_queries
    from dorag.retrieval.index import RetrievalIndex

    relevant: dict[str, set[str]] = {}
    for line in (out / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc, score = line.split("\t")
        if float(score) > 0:
            relevant.setdefault(qid, set()).add(doc)
    queries = [q for q in read_queries(out / "queries.jsonl") if q["id"] in relevant]
    hits = RetrievalIndex.load(idx).search([q["text"] for q in queries], 10)
    recall = sum(len(relevant[q["id"]] & {h.id for h in hs}) / len(relevant[q["id"]]) for q, hs in zip(queries, hits))
    assert json.loads(stdout)["metrics"]["recall@10"] == pytest.approx(recall / len(queries), abs=1e-6)


def test_synth_errors_are_one_line(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "data", "synth", "--corpus", empty, "--out", tmp_path / "o")
    assert code == 1 and err.splitlines()[-1].startswith("error: no pairs: the sources")
    code, _, err = run(capsys, "train-retriever", "--data", tmp_path / "missing.jsonl", "--method", "rocchio")
    assert code == 1 and "choose one of: contrastive, replug-lsr" in err


def answer_from_prompt(prompts: list[str]):
    """/v1/chat/completions answering from the prompt: a request naming the function, or a call of it."""

    def answer(body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        prompts.append(prompt)
        name = re.search(r"def (\w+)\(", prompt).group(1)
        words = name.replace("_", " ")
        text = (f"```python\nresult = {name}(rows, 10, True)\nprint(result)\n```" if "call the function" in prompt
                else f"Request: a helper that will {words} for a list of inputs")
        return {"choices": [{"message": {"content": text}, "finish_reason": "stop"}], "usage": {"completion_tokens": 9}}

    return answer


def test_synth_with_an_openai_compatible_endpoint(capsys, tmp_path, source, json_server):
    prompts: list[str] = []
    out = tmp_path / "llm"
    code, stdout, err = run(capsys, "data", "synth", "--corpus", source, "--out", out, "--source", "llm",
                            "--llm-base-url", json_server(answer_from_prompt(prompts)),
                            "--llm-model", "fake", "--held-out", "0.2", "--categories", "text2code,code2code")
    assert code == 0, err
    pairs = read_jsonl(out / "train.jsonl") + read_jsonl(out / "heldout.jsonl")
    assert prompts and {p["source"] for p in pairs} == {"llm"}
    assert {p["category"] for p in pairs} == {"text2code", "code2code"}
    t2c = [p for p in pairs if p["category"] == "text2code"]
    assert t2c and all(p["query"].startswith("a helper that will") for p in t2c)
    assert all("result = " in p["query"] for p in pairs if p["category"] == "code2code")


def test_synth_with_a_local_model(capsys, tmp_path, tiny_model_dir):
    one = tmp_path / "one.py"
    one.write_text('def fetch_page(url, timeout):\n    """Download a page."""\n    with open_url(url, timeout) as r:\n'
                   '        return r.read().decode("utf-8")\n')
    code, _, err = run(capsys, "data", "synth", "--corpus", one, "--out", tmp_path / "local", "--source", "llm",
                       "--llm-model", tiny_model_dir, "--categories", "text2code", "--held-out", "0",
                       "min_query_words=1", "max_query_in_corpus=1.0")
    assert code == 0, err
    (pair,) = read_jsonl(tmp_path / "local" / "train.jsonl")
    assert pair["source"] == "llm" and pair["query"] and pair["query"] != "Download a page."  # the model wrote it
