"""Retrieval metrics over BEIR-style qrels: Recall@k, Precision@k, MRR@k and nDCG@k.

Definitions follow BEIR/pytrec_eval: a document is relevant when its judgement is > 0; Recall@k is the
fraction of a query's relevant documents in its top k; Precision@k divides by k; MRR@k is the reciprocal
rank of the first relevant document within k (0 if none); nDCG@k uses linear gain (rel / log2(rank + 1))
normalised by the ideal ordering of the judged documents. Each figure is the mean over queries that have
at least one relevant document; a query the run does not answer scores 0.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered

Qrels = Mapping[str, Mapping[str, float]]  # query id -> doc id -> relevance
Run = Mapping[str, Sequence[tuple[str, float]]]  # query id -> ranked (doc id, score), best first


def recall_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    rel = {d for d, r in relevant.items() if r > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def precision_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    return sum(1 for d in ranked[:k] if relevant.get(d, 0) > 0) / k


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    for i, d in enumerate(ranked[:k], start=1):
        if relevant.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], start=1) if relevant.get(d, 0) > 0)
    ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate_run(qrels: Qrels, run: Run, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Mean Recall@k, Precision@k, nDCG@k for each k and MRR@max(k) over the judged queries."""
    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    if not judged:
        raise DataError("qrels: no query has a relevant document")
    sums: dict[str, float] = {}
    kmax = max(ks)
    for q in judged:
        ranked = [d for d, _ in run.get(q, ())]
        for k in ks:
            sums[f"recall@{k}"] = sums.get(f"recall@{k}", 0.0) + recall_at(ranked, qrels[q], k)
            sums[f"precision@{k}"] = sums.get(f"precision@{k}", 0.0) + precision_at(ranked, qrels[q], k)
            sums[f"ndcg@{k}"] = sums.get(f"ndcg@{k}", 0.0) + ndcg_at(ranked, qrels[q], k)
        sums[f"mrr@{kmax}"] = sums.get(f"mrr@{kmax}", 0.0) + mrr_at(ranked, qrels[q], kmax)
    return {name: round(total / len(judged), 6) for name, total in sorted(sums.items())}


def read_qrels(path: str | Path) -> dict[str, dict[str, float]]:
    """BEIR qrels TSV (`query-id<TAB>corpus-id<TAB>score`, header optional), TREC qrels (`qid 0 docid rel`,
    separated by tabs or spaces), CSV, or JSONL (`query_id, doc_id, relevance`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: qrels file not found")
    qrels: dict[str, dict[str, float]] = {}
    if path.suffix in (".tsv", ".txt", ".csv", ".qrels", ".trec"):
        with open(path, newline="", encoding="utf-8") as fh:
            if path.suffix == ".csv":
                rows = enumerate(csv.reader(fh), start=1)
            else:  # BEIR: tabs; TREC (`qid 0 docid rel`): any whitespace, as trec_eval reads it
                rows = ((n, _fields(text)) for n, text in enumerate(fh, start=1))
            for line, row in rows:
                row = [c.strip() for c in row]
                if not row or (line == 1 and len(row) in (3, 4) and not _is_number(row[-1])):
                    continue  # header
                if len(row) == 4:  # TREC: qid 0 docid rel
                    row = [row[0], row[2], row[3]]
                if len(row) != 3 or not _is_number(row[2]):
                    raise DataError(f"{path}:{line}: expected query-id, corpus-id, score")
                qrels.setdefault(row[0], {})[row[1]] = float(row[2])
    else:
        for line, row in iter_jsonl_numbered(path):
            q, d = row.get("query_id", row.get("query-id")), row.get("doc_id", row.get("corpus-id"))
            rel = row.get("relevance", row.get("score", 1))
            if q is None or d is None or not isinstance(rel, (int, float)):
                raise DataError(f"{path}:{line}: a qrels row needs query_id, doc_id and a numeric relevance")
            qrels.setdefault(str(q), {})[str(d)] = float(rel)
    if not qrels:
        raise DataError(f"{path}: empty qrels")
    return qrels


def _fields(line: str) -> list[str]:
    """A qrels line's fields: split at tabs when that gives 3 or 4 (a BEIR id may hold spaces), else at whitespace."""
    tabbed = line.rstrip("\r\n").split("\t")
    return tabbed if len(tabbed) in (3, 4) else line.split()


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
