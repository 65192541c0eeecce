"""Retrieval quality on a docstring -> function test set held out of the standard library.

Builds the BEIR-layout set (dorag.data.qrels), then one index per retriever through the same path as
`dorag index build` / `dorag index evaluate`, and prints Recall@1/5/10, MRR@10 and nDCG@10 for BM25,
MiniLM, mpnet and hybrid (BM25 + MiniLM, RRF), plus each one's build time.

    python bench/retrieval_quality.py                      # 500 queries among 3000 functions
    python bench/retrieval_quality.py --queries 200 --docs 1000 --retrievers bm25,minilm
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

from dorag.data.ast_extract import extract_stdlib  # noqa: E402
from dorag.data.qrels import docstring_pairs, write_beir  # noqa: E402
from dorag.experiments.indexing import IndexEvalConfig, evaluate_index  # noqa: E402
from dorag.retrieval.index import IndexConfig, build_index  # noqa: E402

RETRIEVERS = {
    "bm25": IndexConfig(method="bm25"),
    "minilm": IndexConfig(embedder="all-minilm-l6-v2"),
    "mpnet": IndexConfig(embedder="all-mpnet-base-v2"),
    "hybrid": IndexConfig(method="hybrid", embedder="all-minilm-l6-v2"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--retrievers", default="bm25,minilm,mpnet,hybrid")
    ap.add_argument("--work", default="bench/out/retrieval_quality")
    args = ap.parse_args()
    work = Path(args.work)
    corpus, queries, qrels = docstring_pairs(extract_stdlib(), args.queries, args.docs)
    write_beir(work / "set", corpus, queries, qrels)
    print(f"test set: {len(queries)} queries, {len(corpus)} documents -> {work / 'set'}")
    rows = {}
    for name in args.retrievers.split(","):
        t0 = time.perf_counter()
        index, _ = build_index(corpus, RETRIEVERS[name])
        index.save(work / name)
        build_s = time.perf_counter() - t0
        res = evaluate_index(IndexEvalConfig(index=str(work / name), queries=str(work / "set" / "queries.jsonl"),
                                             qrels=str(work / "set" / "qrels" / "test.tsv"), ks=(1, 5, 10)), index)
        rows[name] = {**res["metrics"], "build_s": round(build_s, 1), "query_ms": res["query_ms"]}
        m = rows[name]
        print(f"{name:>7}: R@1 {m['recall@1']:.3f}  R@5 {m['recall@5']:.3f}  R@10 {m['recall@10']:.3f}  "
              f"MRR@10 {m['mrr@10']:.3f}  nDCG@10 {m['ndcg@10']:.3f}  (build {build_s:.0f} s, {m['query_ms']:.1f} ms/query)",
              flush=True)
    (work / "results.json").write_text(json.dumps({"n_queries": len(queries), "n_docs": len(corpus), "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
