"""`dorag benchmarks qrels` writes the BEIR layout as it is: beir's own GenericDataLoader reads it back, and the
index's document ids (`_id`) are the ones the judgements name."""

from __future__ import annotations

import pytest

from dorag.cli.main import main
from dorag.core.io import read_jsonl


@pytest.mark.parametrize("bench", ["unseen-api", "spider"])
def test_beir_loader_reads_the_qrels_output(capsys, tmp_path, bench):
    from beir.datasets.data_loader import GenericDataLoader

    out = tmp_path / bench
    assert main(["benchmarks", "qrels", bench, "--out", str(out)]) == 0, capsys.readouterr().err
    corpus, queries, qrels = GenericDataLoader(data_folder=str(out)).load(split="test")
    ours = {r["_id"]: r for r in read_jsonl(out / "corpus.jsonl")}
    assert set(corpus) == set(ours) and all(corpus[i]["text"] == ours[i]["text"] for i in ours)
    assert set(queries) == {q["_id"] for q in read_jsonl(out / "queries.jsonl")}
    lines = (out / "qrels" / "test.tsv").read_text().splitlines()[1:]
    assert sum(len(v) for v in qrels.values()) == len(lines) > 0
    assert all(doc in corpus for docs in qrels.values() for doc in docs)  # every judged document is in the corpus
    if bench == "unseen-api":
        assert qrels["UnseenAPI/0"] == {"zorbel:tally": 1, "zorbel-doc:tally": 1}
