"""`dorag index build|evaluate|leakage|info` and `dorag retrieve`."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, progress_bar, renamed

app = typer.Typer(help="Build, inspect, score and leakage-check retrieval indexes.", no_args_is_help=True)


@app.command("build")
def build(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. index.faiss=ivf index.nlist=256"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="index directory to write"),
    corpus: Optional[str] = typer.Option(None, help="corpus JSONL (id, text, meta); default: build from --source"),
    source: Optional[List[str]] = typer.Option(None, help="corpus source when no --corpus (default stdlib); repeatable"),
    method: Optional[str] = typer.Option(None, help="dense, bm25 or hybrid"),
    faiss: Optional[str] = typer.Option(None, help="flat, ivf, hnsw or ivfpq"),
    embedder: Optional[str] = typer.Option(None, help="all-minilm-l6-v2 (default), all-mpnet-base-v2, a path or Hub id"),
    add: bool = typer.Option(False, "--add", help="add new documents to the existing index instead of rebuilding"),
    shard_id: Optional[int] = typer.Option(None, help="embed only this shard (with --num-shards); merge with --from-shards"),
    num_shards: Optional[int] = typer.Option(None, help="number of embedding shards"),
    from_shards: bool = typer.Option(False, "--from-shards", help="build from the embedding shards in <out>.shards"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config"),
) -> None:
    """Build a retrieval index (atomically: a failed build leaves no half-written directory)."""
    from dorag.experiments.indexing import IndexBuildConfig, build as run_build

    cfg = build_config(IndexBuildConfig, config, {
        "out": out, "corpus": corpus, "sources": source or None, "index.method": method, "index.faiss": faiss,
        "index.embedder": embedder, "add": add or None, "shard_id": shard_id, "num_shards": num_shards,
        "from_shards": from_shards or None}, overrides or [])
    if cfg.index.method == "bm25" and cfg.shard_id is None:
        figures = run_build(cfg, progress=echo)  # nothing to embed: no progress bar
    else:
        with progress_bar("embed", unit="doc") as update:
            figures = run_build(cfg, on_progress=update, progress=echo)
    print(json.dumps(figures, indent=2))


@app.command("info")
def info(index: str = typer.Argument(..., help="index directory")) -> None:
    """Print an index's manifest."""
    from dorag.retrieval.index import RetrievalIndex

    idx = RetrievalIndex.load(index)
    print(json.dumps(idx.manifest, indent=2))


@app.command("evaluate")
def evaluate(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. ks=[1,10]"),
    index: Optional[str] = typer.Option(None, help="index directory"),
    queries: Optional[str] = typer.Option(None, help="queries JSONL (id, text)"),
    qrels: Optional[str] = typer.Option(None, help="qrels TSV (BEIR) or JSONL"),
    mode: Optional[str] = typer.Option(None, help="dense, bm25 or hybrid"),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists visited"),
    out: Optional[str] = typer.Option(None, help="metrics JSON"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config"),
) -> None:
    """Recall@k, Precision@k, MRR and nDCG@k of an index on BEIR-style qrels."""
    from dorag.experiments.indexing import IndexEvalConfig, evaluate_index

    cfg = build_config(IndexEvalConfig, config, {"index": index, "queries": queries, "qrels": qrels, "mode": mode,
                                                 "nprobe": nprobe, "out": out}, overrides or [])
    print(json.dumps(evaluate_index(cfg), indent=2))


@app.command("leakage")
def leakage(
    index: Optional[str] = typer.Argument(None, help="index directory"),
    corpus: Optional[str] = typer.Option(None, help="corpus JSONL instead of an index"),
    benchmark: Optional[str] = typer.Option(None, help="registered benchmark (default humaneval)"),
    problems: Optional[str] = typer.Option(None, help="HumanEval-format JSONL instead of a benchmark"),
    benchmark_path: Optional[str] = typer.Option(None, help="local official file for MBPP / DS-1000"),
    threshold: Optional[float] = typer.Option(None, help="n-gram containment that flags a document (default 0.5)"),
    out: Optional[str] = typer.Option(None, help="report JSON (default <index>/leakage-<benchmark>.json)"),
    show: int = typer.Option(10, help="findings to print"),
) -> None:
    """Find corpus documents that contain a benchmark's solutions or near-copies of its prompts.
    Exits 3 when any document is flagged."""
    from dorag.experiments.indexing import LeakageConfig, check_leakage

    cfg = build_config(LeakageConfig, None, {"index": index, "corpus": corpus, "benchmark": benchmark,
                                             "problems": problems, "benchmark_path": benchmark_path,
                                             "threshold": threshold, "out": out}, [])
    with progress_bar("scan", unit="doc") as update:
        report = check_leakage(cfg, on_progress=update)
    for f in report["findings"][:show]:
        print(f"{f['doc_id']}\t{f['task_id']}\t{f['reason']}")
    print(f"{report['n_flagged']} of {report['n_docs']} documents flagged ({report['n_problems_leaked']} of "
          f"{report['n_problems']} {report['benchmark']} problems leaked) in {report['scan_s']} s"
          + (f"; report: {report['report']}" if report.get("report") else ""))
    if report["n_flagged"]:
        raise typer.Exit(3)


def retrieve(
    query: Optional[str] = typer.Argument(None, help="a query; or use --queries FILE"),
    index: Optional[str] = typer.Option(None, help="index directory"),
    queries: Optional[str] = typer.Option(None, help="JSONL of queries (id, text) or a text file, one per line"),
    k: Optional[int] = typer.Option(None, "--rag-k", "-k", help="documents per query (default 5)"),
    k_old: Optional[int] = typer.Option(None, "--k", hidden=True, help="deprecated spelling of --rag-k"),
    mode: Optional[str] = typer.Option(None, help="dense, bm25 or hybrid"),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists visited"),
    reranker: Optional[str] = typer.Option(None, help="cross-encoder to rerank with (path or Hub id)"),
    embedder: Optional[str] = typer.Option(None, help="refuse the index unless it was built with this embedder"),
    snippet: int = typer.Option(160, help="characters of each document to print (0: none)"),
    as_json: bool = typer.Option(False, "--json", help="print JSONL (one line per query, full texts)"),
) -> None:
    """Print ranked ids, scores and snippets for one query or a file of queries."""
    from dorag.core.errors import ConfigError
    from dorag.experiments.indexing import RetrieveConfig, open_index, read_queries, retrieve as run_retrieve

    k = renamed(k, k_old, "--rag-k", "--k")
    cfg = build_config(RetrieveConfig, None, {"index": index, "k": k, "mode": mode, "nprobe": nprobe,
                                              "reranker": reranker, "embedder": embedder}, [])
    if (query is None) == (queries is None):
        raise ConfigError("give one query or --queries FILE")
    qs = read_queries(queries) if queries else [{"id": "q", "text": query}]
    results = run_retrieve(cfg, qs, open_index(cfg))
    for r in results:
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
            continue
        if len(results) > 1:
            print(f"## {r['query_id']}: {r['query'][:100]}")
        for h in r["hits"]:
            print(f"{h['rank']:>3}  {h['score']:.4f}  {h['id']}")
            if snippet:
                text = " ".join(h["text"].split())[:snippet]
                print(f"       {text}")
