"""dorag's embed + index + search path vs raw sentence-transformers `encode` + raw FAISS, same data, same run.

Both paths embed the same standard-library documents with the same model (normalised, batch 64), put them
in a flat inner-product index and answer the same queries (docstrings) top-10. The script prints the
time of each path, their ratio (dorag / raw; the target is <= 1.10), whether the rankings agree, dorag's
single-query latency p50/p99, and IVF recall@10 against flat with the search speedup per nprobe (on the
full built index when --index is given).

    python bench/retrieval.py                              # 2000 docs, 200 queries, MiniLM
    python bench/retrieval.py --docs 4000 --index /work/idx/stdlib-minilm
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

from dorag.data.ast_extract import extract_stdlib, is_useful_docstring  # noqa: E402
from dorag.data.corpus import from_functions  # noqa: E402
from dorag.retrieval.embedders import Embedder, resolve_embedder  # noqa: E402
from dorag.retrieval.index import IndexConfig, RetrievalIndex, build_index, make_faiss, fill_faiss, set_search_params  # noqa: E402


def data(n_docs: int, n_queries: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    records = list(extract_stdlib())
    rng = random.Random(seed)
    docs = from_functions(records)
    rng.shuffle(docs)
    docs = docs[:n_docs]
    queries = [r.docstring.split("\n\n")[0] for r in records if is_useful_docstring(r.docstring, r.name)]
    rng.shuffle(queries)
    return docs, queries[:n_queries]


def raw_path(model_path: str, texts: list[str], queries: list[str], k: int) -> tuple[float, np.ndarray]:
    import faiss
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    t0 = time.perf_counter()
    vecs = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    q = model.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    _, ids = index.search(q, k)
    return time.perf_counter() - t0, ids


def dorag_path(embedder: Embedder, docs: list[dict], queries: list[str], k: int) -> tuple[float, list[list[str]]]:
    t0 = time.perf_counter()
    index, _ = build_index(docs, IndexConfig(embedder=embedder.name), embedder=embedder)
    hits = index.search(queries, k)
    return time.perf_counter() - t0, [[h.id for h in row] for row in hits]


def latency(index: RetrievalIndex, queries: list[str], k: int = 10) -> tuple[float, float]:
    index.search(queries[:2], k)  # warm-up
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search([q], k)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2], 1000 * times[min(len(times) - 1, int(0.99 * len(times)))]


def ivf_sweep(vectors: np.ndarray, queries: np.ndarray, k: int = 10, nlist: int | None = None) -> list[dict]:
    flat, _ = make_faiss(IndexConfig(faiss="flat"), vectors.shape[1], len(vectors))
    fill_faiss(flat, vectors)
    t0 = time.perf_counter()
    _, truth = flat.search(queries, k)
    t_flat = time.perf_counter() - t0
    ivf, params = make_faiss(IndexConfig(faiss="ivf", nlist=nlist), vectors.shape[1], len(vectors))
    fill_faiss(ivf, vectors)
    rows = []
    for nprobe in (1, 2, 4, 8, 16, 32, 64):
        if nprobe > params["nlist"]:
            break
        set_search_params(ivf, nprobe=nprobe)
        t0 = time.perf_counter()
        _, ids = ivf.search(queries, k)
        t = time.perf_counter() - t0
        rec = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth)]))
        rows.append({"nlist": params["nlist"], "nprobe": nprobe, "recall@10": round(rec, 4),
                     "speedup_vs_flat": round(t_flat / t, 2), "flat_ms_per_query": round(1000 * t_flat / len(queries), 4)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="all-minilm-l6-v2")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--index", help="a built dense flat index: its vectors are used for the IVF sweep and latency")
    ap.add_argument("--out", default="bench/out/retrieval.json")
    args = ap.parse_args()

    docs, queries = data(args.docs, args.queries)
    embedder = Embedder(args.embedder)
    path = resolve_embedder(args.embedder)
    texts = [d["text"] for d in docs]
    raw_t, dorag_t = [], []
    raw_ids = dorag_ids = None
    for rep in range(args.repeats):  # interleaved so machine noise hits both paths alike
        for name in (("raw", "dorag") if rep % 2 == 0 else ("dorag", "raw")):
            if name == "raw":
                t, ids = raw_path(path, texts, queries, 10)
                raw_t.append(t)
                raw_ids = [[docs[i]["id"] for i in row] for row in ids]
            else:
                t, dorag_ids = dorag_path(embedder, docs, queries, 10)
                dorag_t.append(t)
    same = sum(a == b for a, b in zip(raw_ids, dorag_ids))
    result = {
        "embedder": args.embedder, "n_docs": len(docs), "n_queries": len(queries),
        "raw_s": round(min(raw_t), 2), "dorag_s": round(min(dorag_t), 2),
        "ratio_dorag_over_raw": round(min(dorag_t) / min(raw_t), 3),
        "raw_docs_per_s": round(len(docs) / min(raw_t), 1), "identical_rankings": f"{same}/{len(queries)}",
    }
    if args.index:
        index = RetrievalIndex.load(args.index)
        vectors = index.dense.reconstruct_n(0, index.dense.ntotal)
        qv = index.embed_queries(queries)
    else:
        index, _ = build_index(docs, IndexConfig(embedder=embedder.name), embedder=embedder)
        vectors = index.dense.reconstruct_n(0, index.dense.ntotal)
        qv = embedder.encode(queries)
    p50, p99 = latency(index, queries)
    result.update({"latency_index_docs": len(index), "query_latency_ms_p50": round(p50, 2),
                   "query_latency_ms_p99": round(p99, 2), "ivf_sweep": ivf_sweep(vectors, qv)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["ratio_dorag_over_raw"] <= 1.10
    print(f"dorag / raw = {result['ratio_dorag_over_raw']:.3f} ({'within' if ok else 'OUTSIDE'} the 10% target)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
