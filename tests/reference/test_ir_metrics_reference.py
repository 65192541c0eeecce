"""dorag's Recall@k, P@k, MRR and nDCG@k against trec_eval (pytrec_eval), on random runs and graded qrels.

trec_eval's measures: recall_k, P_k, ndcg_cut_k (linear gain rel / log2(rank + 1), ideal from the judged
documents) and recip_rank (no cut-off: the run is cut at k first, which makes it MRR@k). trec_eval ranks a run
by score, so each run's scores fall strictly with its rank. A judged query that the run does not answer is
left out by trec_eval and scores 0 in dorag (its documented convention); both are checked.
"""

from __future__ import annotations

import random

import pytest

from dorag.retrieval.metrics import evaluate_run, mrr_at, ndcg_at, precision_at, recall_at

pytrec_eval = pytest.importorskip("pytrec_eval")
KS = (1, 3, 5, 10)


def _random_case(seed: int, n_queries: int = 40, pool: int = 60):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(pool)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[tuple[str, float]]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice((0, 0, 1, 1, 2, 3)) for d in judged}  # graded, with judged non-relevant
        ranked = rng.sample(docs, rng.randint(0, 20))  # some runs are short or empty
        run[qid] = [(d, 100.0 - i) for i, d in enumerate(ranked)]
    return qrels, run


def _trec(qrels, run, k):
    measures = {f"recall_{k}", f"P_{k}", f"ndcg_cut_{k}", "recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, measures)
    cut = {q: {d: s for d, s in ranked[:k]} for q, ranked in run.items() if ranked}
    return evaluator.evaluate(cut)


@pytest.mark.parametrize("seed", range(5))
def test_per_query_figures_match_trec_eval(seed):
    qrels, run = _random_case(seed)
    compared = 0
    for k in KS:
        ref = _trec(qrels, run, k)
        for q, want in ref.items():
            ranked = [d for d, _ in run[q]]
            rels = {d: float(r) for d, r in qrels[q].items()}
            if not any(r > 0 for r in rels.values()):
                continue  # trec_eval scores such a query 0 everywhere; dorag does not average over it
            assert recall_at(ranked, rels, k) == pytest.approx(want[f"recall_{k}"], abs=1e-9), (q, k)
            assert precision_at(ranked, rels, k) == pytest.approx(want[f"P_{k}"], abs=1e-9), (q, k)
            assert ndcg_at(ranked, rels, k) == pytest.approx(want[f"ndcg_cut_{k}"], abs=1e-9), (q, k)
            assert mrr_at(ranked, rels, k) == pytest.approx(want["recip_rank"], abs=1e-9), (q, k)
            compared += 1
    assert compared > 100


def test_means_match_trec_eval_with_unanswered_queries_scoring_zero():
    qrels, run = _random_case(11)
    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    ours = evaluate_run({q: {d: float(r) for d, r in v.items()} for q, v in qrels.items()}, run, ks=KS)
    for k in KS:
        ref = _trec(qrels, run, k)
        for ours_name, trec_name in ((f"recall@{k}", f"recall_{k}"), (f"precision@{k}", f"P_{k}"),
                                     (f"ndcg@{k}", f"ndcg_cut_{k}")):
            want = sum(ref[q][trec_name] if q in ref else 0.0 for q in judged) / len(judged)
            assert ours[ours_name] == pytest.approx(want, abs=1e-6), ours_name
    ref = _trec(qrels, run, max(KS))
    want = sum(ref[q]["recip_rank"] if q in ref else 0.0 for q in judged) / len(judged)
    assert ours[f"mrr@{max(KS)}"] == pytest.approx(want, abs=1e-6)
