"""Retrieval metrics against a worked example computed by hand, and qrels parsing."""

from __future__ import annotations

import math

import pytest

from dorag.core.errors import DataError
from dorag.retrieval.metrics import evaluate_run, mrr_at, ndcg_at, precision_at, read_qrels, recall_at

# q1: relevant {a: 1, c: 2, z: 1}; the run ranks a, b, c, d  (z is never retrieved)
# q2: relevant {x: 1}; the run ranks y, x
QRELS = {"q1": {"a": 1, "c": 2, "z": 1}, "q2": {"x": 1}}
RUN = {"q1": [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.1)], "q2": [("y", 2.0), ("x", 1.0)]}


def test_single_query_metrics_by_hand():
    ranked = ["a", "b", "c", "d"]
    rel = QRELS["q1"]
    assert recall_at(ranked, rel, 1) == pytest.approx(1 / 3)
    assert recall_at(ranked, rel, 3) == pytest.approx(2 / 3)
    assert precision_at(ranked, rel, 3) == pytest.approx(2 / 3)
    assert precision_at(ranked, rel, 10) == pytest.approx(2 / 10)
    assert mrr_at(ranked, rel, 10) == 1.0
    assert mrr_at(["y", "x"], QRELS["q2"], 10) == 0.5
    assert mrr_at(["y", "x"], QRELS["q2"], 1) == 0.0
    # DCG@3 = 1/log2(2) + 2/log2(4) = 1 + 1 = 2; ideal order c(2), a(1), z(1): 2 + 1/log2(3) + 1/log2(4)
    assert ndcg_at(ranked, rel, 3) == pytest.approx(2 / (2 + 1 / math.log2(3) + 0.5))


def test_mean_over_queries_by_hand():
    m = evaluate_run(QRELS, RUN, ks=(1, 2))
    assert m["recall@1"] == pytest.approx((1 / 3 + 0) / 2, abs=1e-6)
    assert m["recall@2"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-6)
    assert m["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2, abs=1e-6)
    assert m["mrr@2"] == pytest.approx((1 + 0.5) / 2, abs=1e-6)
    ndcg2_q1 = 1 / (2 + 1 / math.log2(3))
    ndcg2_q2 = (1 / math.log2(3)) / 1
    assert m["ndcg@2"] == pytest.approx((ndcg2_q1 + ndcg2_q2) / 2, abs=1e-6)


def test_unanswered_query_scores_zero_and_unjudged_queries_are_ignored():
    m = evaluate_run({"q1": {"a": 1}, "q9": {"b": 0}}, {}, ks=(5,))
    assert m == {"mrr@5": 0.0, "ndcg@5": 0.0, "precision@5": 0.0, "recall@5": 0.0}
    with pytest.raises(DataError, match="no query has a relevant document"):
        evaluate_run({"q": {"a": 0}}, {}, ks=(1,))


def test_read_qrels_beir_tsv_trec_and_jsonl(tmp_path):
    tsv = tmp_path / "test.tsv"
    tsv.write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\nq1\tc\t2\n")
    assert read_qrels(tsv) == {"q1": {"a": 1.0, "c": 2.0}}
    trec = tmp_path / "run.txt"
    trec.write_text("q1 0 a 1\n".replace(" ", "\t"))
    assert read_qrels(trec) == {"q1": {"a": 1.0}}
    spaced = tmp_path / "qrels.test.txt"  # TREC as trec_eval reads it: spaces, any number of them
    spaced.write_text("q1 0 a 1\nq1  0   b\t0\nq2 0 c 2\r\n")
    assert read_qrels(spaced) == {"q1": {"a": 1.0, "b": 0.0}, "q2": {"c": 2.0}}
    beir_spaced = tmp_path / "spaced.tsv"
    beir_spaced.write_text("q1 a 1\nq2 b 3\n")
    assert read_qrels(beir_spaced) == {"q1": {"a": 1.0}, "q2": {"b": 3.0}}
    jl = tmp_path / "q.jsonl"
    jl.write_text('{"query_id": "q1", "doc_id": "a", "relevance": 1}\n{"query_id": "q1"}\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: a qrels row needs"):
        read_qrels(jl)
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\ta\n")
    with pytest.raises(DataError, match="bad.tsv:1: expected query-id, corpus-id, score"):
        read_qrels(bad)
