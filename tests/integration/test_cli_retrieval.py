"""dorag data corpus, index build|info|evaluate|leakage, retrieve and generate --rag-index, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.cli.main import main
from dorag.core.io import read_jsonl, write_jsonl

pytestmark = pytest.mark.integration


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def built(capsys, tmp_path, code_corpus, tiny_embedder_dir) -> Path:
    idx = tmp_path / "idx"
    code, out, err = run(capsys, "index", "build", "--corpus", code_corpus, "--out", idx, "--method", "hybrid",
                         "--embedder", tiny_embedder_dir)
    assert code == 0, err
    figures = json.loads(out)
    assert figures["n_docs"] == 66 and figures["index_bytes"] > 0 and (idx / "build.json").is_file()
    return idx


def test_corpus_then_bm25_index_then_retrieve(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "geometry.py").write_text('def area(w, h):\n    """Area of a rectangle."""\n    return w * h\n\n'
                                     'class Circle:\n    """A circle."""\n    def perimeter(self):\n        return 6.28 * self.r\n')
    corpus = tmp_path / "c.jsonl"
    code, out, _ = run(capsys, "data", "corpus", "--source", src, "--out", corpus)
    assert code == 0 and "3 documents" in out
    code, _, err = run(capsys, "index", "build", "--corpus", corpus, "--out", tmp_path / "bm", "--method", "bm25")
    assert code == 0, err
    code, out, _ = run(capsys, "retrieve", "rectangle area", "--index", tmp_path / "bm", "-k", "2")
    assert code == 0
    first = out.splitlines()[0].split()
    assert first[0] == "1" and first[2] == "geometry:area"
    code, out, _ = run(capsys, "index", "info", tmp_path / "bm")
    assert code == 0 and json.loads(out)["method"] == "bm25"


def test_retrieve_a_query_file_as_json(capsys, tmp_path, built):
    qfile = tmp_path / "q.jsonl"
    write_jsonl(qfile, [{"id": "1", "text": "flatten a list of lists"}, {"_id": "2", "text": "urlsplit"}])
    code, out, _ = run(capsys, "retrieve", "--queries", qfile, "--index", built, "-k", "3", "--json")
    rows = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and [r["query_id"] for r in rows] == ["1", "2"]
    assert all(len(r["hits"]) == 3 for r in rows) and rows[0]["hits"][0]["id"] == "lists:flatten"


def test_index_evaluate_on_qrels(capsys, tmp_path, built):
    queries, qrels = tmp_path / "queries.jsonl", tmp_path / "qrels.tsv"
    write_jsonl(queries, [{"_id": "q1", "text": "flatten list of lists"}, {"_id": "q2", "text": "urlsplit url"}])
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tlists:flatten\t1\nq2\tnet:parse_url\t1\n")
    code, out, err = run(capsys, "index", "evaluate", "--index", built, "--queries", queries, "--qrels", qrels,
                         "--mode", "bm25", "--out", tmp_path / "m.json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n_queries"] == 2 and result["metrics"]["recall@1"] == 1.0 and result["metrics"]["mrr@10"] == 1.0
    assert json.loads((tmp_path / "m.json").read_text())["metrics"] == result["metrics"]


def test_index_leakage_flags_humaneval_solutions(capsys, tmp_path):
    from dorag.evaluation.benchmarks import load_problems

    problems = load_problems("humaneval", limit=5)
    corpus = tmp_path / "leaky.jsonl"
    write_jsonl(corpus, [{"id": f"copy{i}", "text": p["prompt"] + p["canonical_solution"]} for i, p in enumerate(problems)]
                + [{"id": "ok", "text": "def unrelated():\n    return 42\n"}])
    code, _, err = run(capsys, "index", "build", "--corpus", corpus, "--out", tmp_path / "leaky", "--method", "bm25")
    assert code == 0, err
    code, out, _ = run(capsys, "index", "leakage", tmp_path / "leaky")
    assert code == 3
    assert "5 of 6 documents flagged (5 of 164 humaneval problems leaked)" in out
    report = json.loads((tmp_path / "leaky" / "leakage-humaneval.json").read_text())
    assert report["n_flagged"] == 5 and {f["doc_id"] for f in report["findings"]} == {f"copy{i}" for i in range(5)}
    code, out, _ = run(capsys, "data", "corpus", "--source", corpus, "--out", tmp_path / "clean.jsonl",
                       "--exclude-leaking", "humaneval")
    assert code == 0 and [d["id"] for d in read_jsonl(tmp_path / "clean.jsonl")] == ["ok"]


def test_generate_with_rag_records_retrieved_ids_and_refuses_a_leaking_index(
        capsys, tmp_path, built, tiny_model_dir, problems_file):
    args = ["generate", "--model", tiny_model_dir, "--problems", problems_file, "--max-new-tokens", "4",
            "--rag-index", built, "--rag-k", "2", "--run-dir", tmp_path / "run", "rag.mode=bm25"]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(samples) == 3
    for s in samples:
        assert len(s["retrieved"]) == 2 and len(s["retrieved_scores"]) == 2
        assert set(s["context_ids"]) <= set(s["retrieved"])
    metrics = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("rag_top_k") == 2 and m.get("leakage_flagged") == 0 for m in metrics)
    # an index holding the problems' solutions is refused, unless --allow-leakage
    leaky_corpus = tmp_path / "leaky.jsonl"
    write_jsonl(leaky_corpus, [{"id": f"copy{i}", "text": p["prompt"] + p["canonical_solution"]}
                               for i, p in enumerate(read_jsonl(problems_file))])
    assert run(capsys, "index", "build", "--corpus", leaky_corpus, "--out", tmp_path / "leaky", "--method", "bm25")[0] == 0
    args[args.index(built)] = tmp_path / "leaky"
    args[args.index(tmp_path / "run")] = tmp_path / "run2"
    code, _, err = run(capsys, *args)
    errors = [l for l in err.splitlines() if l.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err
    assert "the index leaks" in errors[0] and "--allow-leakage" in errors[0]
    assert not (tmp_path / "run2" / "samples.jsonl").exists()
    code, _, err = run(capsys, *args, "--allow-leakage")
    assert code == 0, err


@pytest.mark.parametrize("case", ["empty-corpus", "corrupt-index", "bad-query-line", "k-zero", "k-negative",
                                  "missing-index", "bad-embedder", "dim-mismatch", "other-embedder"])
def test_bad_input_is_one_line_and_leaves_nothing_behind(case, capsys, tmp_path, built, tiny_embedder_dir):
    if case == "empty-corpus":
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        args, message = ["index", "build", "--corpus", empty, "--out", tmp_path / "new"], "empty corpus"
    elif case == "corrupt-index":
        (built / "dense.faiss").write_bytes(b"\x00" * 64)
        args, message = ["retrieve", "x", "--index", built], "corrupt index file"
    elif case == "bad-query-line":
        q = tmp_path / "q.jsonl"
        q.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": \n')
        args, message = ["retrieve", "--queries", q, "--index", built], "q.jsonl:2"
    elif case == "k-zero":
        args, message = ["retrieve", "x", "--index", built, "-k", "0"], "k: must be at least 1, got 0"
    elif case == "k-negative":
        args, message = ["retrieve", "x", "--index", built, "-k", "-2"], "k: must be at least 1, got -2"
    elif case == "missing-index":
        args, message = ["retrieve", "x", "--index", tmp_path / "nope"], "index directory not found"
    elif case == "other-embedder":
        args, message = ["retrieve", "x", "--index", built, "--embedder", "all-mpnet-base-v2"], "was built with embedder"
    elif case == "bad-embedder":
        args, message = (["index", "build", "--corpus", built / "docs.jsonl", "--out", tmp_path / "new", "--embedder",
                          "not-a-model"], "unknown embedder 'not-a-model'")
    else:
        from conftest import build_tiny_embedder

        wide = build_tiny_embedder(tmp_path / "wide", dim=48)
        manifest = json.loads((built / "manifest.json").read_text())
        manifest["embedder"]["id"] = str(wide)  # the index now claims a 48-d model for its 32-d vectors
        (built / "manifest.json").write_text(json.dumps(manifest))
        args, message = ["retrieve", "x", "--index", built, "--mode", "dense"], "embedder dimension mismatch"
    code, out, err = run(capsys, *args)
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp directories left


def test_sharded_build_then_merge_equals_a_direct_build(capsys, tmp_path, code_corpus, tiny_embedder_dir):
    common = ["--corpus", code_corpus, "--embedder", tiny_embedder_dir]
    out = tmp_path / "sharded"
    for i in (0, 1):
        code, stdout, err = run(capsys, "index", "build", *common, "--out", out, "--shard-id", i, "--num-shards", 2)
        assert code == 0, err
        assert json.loads(stdout)["shard"].endswith(f"shard-0000{i}-of-00002.npy")
    assert not out.exists()  # shards only, no index yet
    code, _, err = run(capsys, "index", "build", *common, "--out", out, "--from-shards")
    assert code == 0, err
    code, _, err = run(capsys, "index", "build", *common, "--out", tmp_path / "direct")
    assert code == 0, err
    q = ["greatest common divisor", "read a json file"]
    got = [run(capsys, "retrieve", text, "--index", d, "-k", "5", "--json")[1] for d in (out, tmp_path / "direct") for text in q]
    ids = [[h["id"] for h in json.loads(g)["hits"]] for g in got]
    assert ids[:2] == ids[2:]


def test_add_puts_only_new_documents_into_an_existing_index(capsys, tmp_path, built, code_corpus):
    bigger = tmp_path / "bigger.jsonl"
    write_jsonl(bigger, read_jsonl(code_corpus) + [{"id": "new:doc", "text": "def brand_new_function():\n    pass\n"}])
    code, out, err = run(capsys, "index", "build", "--corpus", bigger, "--out", built, "--add")
    assert code == 0, err
    assert json.loads(out)["added"] == 1 and json.loads(out)["n_docs"] == 67
    code, out, _ = run(capsys, "retrieve", "brand_new_function", "--index", built, "--mode", "bm25", "-k", "1")
    assert "new:doc" in out


def test_unseen_api_end_to_end_with_its_corpus(capsys, tmp_path, tiny_model_dir):
    corpus = tmp_path / "unseen.jsonl"
    assert run(capsys, "data", "corpus", "--source", "unseen-api", "--out", corpus)[0] == 0
    assert run(capsys, "index", "build", "--corpus", corpus, "--out", tmp_path / "idx", "--method", "bm25")[0] == 0
    code, out, err = run(capsys, "benchmarks", "qrels", "unseen-api", "--out", tmp_path / "q")
    assert code == 0, err
    code, out, err = run(capsys, "index", "evaluate", "--index", tmp_path / "idx", "--queries", tmp_path / "q" / "queries.jsonl",
                         "--qrels", tmp_path / "q" / "qrels" / "test.tsv")
    assert code == 0, err
    assert json.loads(out)["n_queries"] == 89 and json.loads(out)["metrics"]["recall@10"] > 0.5
    code, _, err = run(capsys, "generate", "--benchmark", "unseen-api", "--limit", "2", "--model", tiny_model_dir,
                       "--max-new-tokens", "4", "--rag-index", tmp_path / "idx", "--top-k", "3", "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert "warning: --top-k is deprecated" in err  # the old spelling still works, for one release
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert len(samples) == 2 and all(s["retrieved"][0].startswith("zorbel") for s in samples)
    code, out, err = run(capsys, "evaluate", tmp_path / "run" / "samples.jsonl", "--benchmark", "unseen-api")
    assert code == 0, err


def test_rag_k_is_one_name_for_how_many_documents_and_needs_an_index(capsys, tmp_path, built, tiny_model_dir):
    common = ["generate", "--benchmark", "humaneval", "--limit", "1", "--model", tiny_model_dir, "--max-new-tokens", "2"]
    code, _, err = run(capsys, *common, "--rag-k", "2", "--run-dir", tmp_path / "r")
    assert code == 1 and "no index was given; add --rag-index" in err and not (tmp_path / "r").exists()
    code, _, err = run(capsys, *common, "--rag-k", "2", "--top-k", "3", "--rag-index", built)
    assert code == 1 and "--top-k is the old spelling of --rag-k" in err
    code, out, err = run(capsys, "retrieve", "rectangle area", "--index", built, "--rag-k", "2", "--json")
    assert code == 0, err
    assert len(json.loads(out)["hits"]) == 2
    code, out, err = run(capsys, "retrieve", "rectangle area", "--index", built, "--k", "1", "--json")
    assert code == 0 and len(json.loads(out)["hits"]) == 1 and "--k is deprecated" in err


def test_packaged_minilm_finds_the_right_stdlib_function(capsys, tmp_path):
    """The real offline default embedder, end to end on a small real corpus (the json package)."""
    idx = tmp_path / "json-idx"
    code, out, err = run(capsys, "index", "build", "--source", "package:json", "--out", idx)
    assert code == 0, err
    manifest = json.loads((idx / "manifest.json").read_text())
    assert manifest["embedder"]["id"] == "all-minilm-l6-v2" and manifest["embedder"]["dim"] == 384
    code, out, _ = run(capsys, "retrieve", "serialize a Python object to a JSON formatted string", "--index", idx,
                       "-k", "3", "--json")
    ids = [h["id"] for h in json.loads(out)["hits"]]
    assert code == 0 and ids[0] in {"json:dumps", "json:dump", "json.encoder:JSONEncoder", "json.encoder:JSONEncoder.encode"}, ids
    code, out, _ = run(capsys, "retrieve", "parse a JSON document from a string", "--index", idx, "-k", "3", "--json")
    ids = [h["id"] for h in json.loads(out)["hits"]]
    assert {"json:loads", "json.decoder:JSONDecoder.decode", "json.decoder:JSONDecoder.raw_decode"} & set(ids), ids
