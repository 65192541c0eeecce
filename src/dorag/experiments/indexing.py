"""`dorag index build|add|evaluate|leakage` and `dorag retrieve`: corpus -> index -> queries -> metrics.

Wires the data layer (corpus builders, leakage check), the retrieval layer (embedders, indexes, metrics)
and the evaluation layer (benchmark problems) together; the CLI only parses flags.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import iter_jsonl_numbered, read_json, write_json
from dorag.retrieval.index import IndexConfig

Progress = Callable[[int, int], None]


@dataclass
class IndexBuildConfig:
    """Build (or extend) a retrieval index from a corpus file or corpus sources."""

    out: str | None = option(None, "index directory to write")
    corpus: str | None = option(None, "corpus JSONL (id, text, meta); default: build one from `sources`")
    sources: tuple[str, ...] = option(("stdlib",), "corpus sources when no corpus file is given (see dorag data corpus)")
    max_units: int = option(400, "chunk documents longer than this many units (see chunk_unit)")
    chunk_unit: Literal["words", "tokens"] = option(
        "words", "words, or the embedder's tokens (max_units is then capped at its max_seq_length, so nothing is truncated)")
    classes: bool = option(True, "add one document per class (header, docstring, method signatures)")
    add: bool = option(False, "add the corpus's new documents to the existing index at `out` instead of rebuilding")
    shard_id: int | None = option(None, "embed only this shard of the corpus (with num_shards); merge later")
    num_shards: int | None = option(None, "number of embedding shards")
    shards_dir: str | None = option(None, "where shards are written/read (default: <out>.shards)")
    from_shards: bool = option(False, "build the index from the embedding shards in shards_dir")
    index: IndexConfig = field(default_factory=IndexConfig)

    def check(self) -> list[str]:
        problems = []
        if not self.out:
            problems.append("out: give the index directory to write (--out DIR)")
        if (self.shard_id is None) != (self.num_shards is None):
            problems.append("shard_id: give both --shard-id and --num-shards")
        elif self.num_shards is not None and not 0 <= self.shard_id < self.num_shards:
            problems.append(f"shard_id: must be in [0, {self.num_shards}), got {self.shard_id}")
        if self.max_units < 8:
            problems.append(f"max_units: must be at least 8, got {self.max_units}")
        return problems

    def resolved_shards_dir(self) -> Path:
        return Path(self.shards_dir) if self.shards_dir else Path(f"{str(self.out).rstrip('/')}.shards")


def benchmark_corpus(name: str) -> list[dict[str, Any]]:
    """The documentation corpus that ships with a benchmark (source ``unseen-api``; ``spider-schema``: one
    document per table of the Spider databases, CREATE TABLE plus sample rows)."""
    from dorag.evaluation.unseen_api import corpus

    if name == "spider-schema":
        from dorag.data import spider

        return spider.corpus()
    if name != "unseen-api":
        raise DataError(f"no corpus ships with benchmark {name!r}")
    return corpus()


def benchmark_qrels(name: str, query: str = "prompt",
                    benchmark_path: str | None = None) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """BEIR queries and qrels mapping each task of `name` to the documents of the APIs it needs.

    unseen-api: the library's source and reference documents (corpus `unseen-api`); unseen-api-shift:
    numpy's API documents (corpus `apidoc:numpy`; a chunked document counts through its first chunk).
    """
    import re as _re

    from dorag.evaluation.benchmarks import load_problems

    problems = load_problems(name, benchmark_path=benchmark_path)
    if name == "unseen-api":
        from dorag.evaluation.unseen_api import qrels as unseen_qrels

        rels = unseen_qrels(problems)
    elif name in ("spider", "gretel-sql"):
        from dorag.data import spider

        rels = spider.qrels(problems)  # the tables the gold query reads (corpus spider-schema / gretel-schema:PATH)
        return [{"_id": p["task_id"], "text": p["rag_query"]} for p in problems], rels
    elif name == "unseen-api-shift":
        ids = {d["id"] for d in corpus_from_sources(["apidoc:numpy"])}

        def doc_id(api: str) -> str | None:
            base = f"apidoc:numpy.{api}"
            return base if base in ids else f"{base}#0" if f"{base}#0" in ids else None  # first chunk

        rels = {p["task_id"]: {d: 1 for d in map(doc_id, p["meta"]["apis"]) if d} for p in problems}
        rels = {t: r for t, r in rels.items() if r}  # constants (np.nan, np.inf) have no document
    else:
        raise DataError(f"benchmark {name!r} has no API relevance judgements (unseen-api, unseen-api-shift, spider, "
                        "gretel-sql do)")

    def text(p: dict[str, Any]) -> str:
        if query == "docstring":
            m = _re.search(r'"""(.*?)"""', p["prompt"], _re.DOTALL)
            return m.group(1).strip() if m else p["prompt"]
        return p["prompt"].strip()

    return [{"_id": p["task_id"], "text": text(p)} for p in problems], rels


def qrels_corpus_source(name: str, benchmark_path: str | None = None) -> str:
    """The corpus source whose document ids a benchmark's qrels name (`benchmark_qrels`)."""
    sources = {"unseen-api": "unseen-api", "unseen-api-shift": "apidoc:numpy", "spider": "spider-schema"}
    if name == "gretel-sql":
        return f"gretel-schema:{benchmark_path}" if benchmark_path else "gretel-schema:gretelai/synthetic_text_to_sql"
    if name not in sources:
        raise DataError(f"benchmark {name!r} has no API relevance judgements (unseen-api, unseen-api-shift, spider, "
                        "gretel-sql do)")
    return sources[name]


def corpus_from_sources(sources: Sequence[str], max_units: int = 400, classes: bool = True,
                        count: Callable[[str], int] | None = None) -> list[dict[str, Any]]:
    """`build_corpus` plus the benchmark corpora (``unseen-api``), deduplicated together."""
    from dorag.data.corpus import build_corpus, dedupe, unique_ids, words

    count = count or words
    plain = [s for s in sources if s not in ("unseen-api", "spider-schema") and not s.startswith("gretel-schema:")]
    docs = build_corpus(plain, max_units, classes, count) if plain else []
    if "spider-schema" in sources:  # one document per table, never chunked: a table is the retrieval unit
        docs += benchmark_corpus("spider-schema")
    for src in sources:
        if src.startswith("gretel-schema:"):  # the tables of each gretelai/synthetic_text_to_sql context
            from dorag.data import gretel_sql

            docs += gretel_sql.corpus(src.split(":", 1)[1])
    if "unseen-api" in sources:
        from dorag.data.corpus import chunk

        docs += [p for d in benchmark_corpus("unseen-api") for p in chunk(d, max_units, count)]
    return unique_ids(dedupe(docs))


def load_corpus(cfg: IndexBuildConfig) -> list[dict[str, Any]]:
    from dorag.retrieval.index import read_corpus

    if cfg.corpus:
        return read_corpus(cfg.corpus)
    if cfg.chunk_unit == "tokens":
        count, limit = embedder_token_counter(cfg.index.embedder, cfg.index.max_seq_length)
        return corpus_from_sources(cfg.sources, min(cfg.max_units, limit), cfg.classes, count)
    return corpus_from_sources(cfg.sources, cfg.max_units, cfg.classes)


def embedder_token_counter(name: str, max_seq_length: int | None) -> tuple[Callable[[str], int], int]:
    """Token counts by the embedder's own tokenizer, and the most tokens it embeds (less [CLS]/[SEP])."""
    from dorag.retrieval.embedders import Embedder

    emb = Embedder(name, max_seq_length=max_seq_length)
    tok = emb.model.tokenizer
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), emb.max_seq_length - 2


def build(cfg: IndexBuildConfig, on_progress: Progress | None = None,
          progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Run one `dorag index build` and return its figures (written to <out>/build.json too)."""
    from dorag.retrieval.index import RetrievalIndex, build_index, dir_size_bytes
    from dorag.retrieval.shards import RESUME_CHUNK, embed_resumable, embed_shard, merge_shards

    from dorag.retrieval.embedders import resolve_embedder

    if cfg.index.method != "bm25" and not cfg.add:
        resolve_embedder(cfg.index.embedder, progress=progress)  # an unknown embedder fails before any work
    t0 = time.perf_counter()
    docs = load_corpus(cfg)
    t_corpus = time.perf_counter() - t0
    progress(f"corpus: {len(docs)} documents ({t_corpus:.1f} s)")
    out = Path(cfg.out)
    if cfg.shard_id is not None:
        path = embed_shard(docs, cfg.index, cfg.resolved_shards_dir(), cfg.shard_id, cfg.num_shards,
                           on_progress=on_progress)
        return {"shard": str(path), "n_docs": len(docs), "wall_s": round(time.perf_counter() - t0, 2)}
    if cfg.add:
        index = RetrievalIndex.load(out)
        known = {d["id"] for d in index.docs}
        new = [d for d in docs if d["id"] not in known]
        t1 = time.perf_counter()
        n = index.add(new, on_progress=on_progress) if new else 0
        index.save(out)
        return {"added": n, "n_docs": len(index), "wall_s": round(time.perf_counter() - t1, 2), "out": str(out)}
    vectors = embedder = chunks = None
    if cfg.from_shards:
        vectors, _ = merge_shards(docs, cfg.resolved_shards_dir(), cfg.index)
    elif cfg.index.method != "bm25" and len(docs) > RESUME_CHUNK:  # long enough to be worth resuming
        chunks = Path(f"{str(out).rstrip('/')}.embedding")
        vectors, embedder, embed_s, embedded = embed_resumable(docs, cfg.index, chunks, on_progress=on_progress,
                                                               progress=progress)
    index, timings = build_index(docs, cfg.index, embedder=embedder, vectors=vectors, on_progress=on_progress,
                                 progress=progress)
    if chunks is not None:
        timings.update(embed_s=embed_s, docs_per_s=embedded / embed_s if embed_s > 0 else 0.0)  # this run's share
    index.save(out)
    if chunks is not None:
        shutil.rmtree(chunks, ignore_errors=True)  # the index holds the vectors now
    figures = {"n_docs": len(docs), "method": cfg.index.method, "faiss": cfg.index.faiss if cfg.index.method != "bm25" else None,
               "embedder": (index.manifest.get("embedder") or {}).get("id"), "corpus_s": round(t_corpus, 2),
               **{k: round(v, 2) for k, v in timings.items()}, "build_s": round(time.perf_counter() - t0, 2),
               "index_bytes": dir_size_bytes(out), "out": str(out)}
    write_json(out / "build.json", figures)
    return figures


# ---------------------------------------------------------------- queries

def read_queries(path: str | Path) -> list[dict[str, Any]]:
    """Queries from JSONL (`id`/`_id` and `text`/`query`, BEIR style) or a plain text file (one per line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: query file not found")
    if path.suffix not in (".jsonl", ".json", ".gz"):
        lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()]
        out = [{"id": str(i), "text": l} for i, l in enumerate(lines, start=1) if l]
    else:
        out = []
        for line, row in iter_jsonl_numbered(path):
            qid = row.get("id", row.get("_id", row.get("query_id")))
            text = row.get("text", row.get("query"))
            if qid is None or not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}:{line}: a query needs an 'id' (or '_id') and a non-empty 'text' (or 'query')")
            out.append({"id": str(qid), "text": text})
    if not out:
        raise DataError(f"{path}: no queries")
    return out


@dataclass
class RetrieveConfig:
    """Query an index."""

    index: str | None = option(None, "index directory")
    k: int = option(5, "documents per query")
    mode: str | None = option(None, "dense, bm25 or hybrid (default: the index's method)")
    nprobe: int | None = option(None, "IVF lists to visit (default: the index's)")
    ef_search: int | None = option(None, "HNSW beam width (default: the index's)")
    reranker: str | None = option(None, "cross-encoder (path or Hub id) to rerank the candidates")
    embedder: str | None = option(None, "refuse the index unless it was built with this embedder")

    def check(self) -> list[str]:
        problems = []
        if not self.index:
            problems.append("index: give the index directory (--index DIR)")
        if self.k < 1:
            problems.append(f"k: must be at least 1, got {self.k}")
        if self.mode not in (None, "dense", "bm25", "hybrid"):
            problems.append(f"mode: must be dense, bm25 or hybrid, got {self.mode!r}")
        return problems


def open_index(cfg: RetrieveConfig) -> Any:
    from dorag.retrieval.index import RetrievalIndex

    index = RetrievalIndex.load(cfg.index, embedder=cfg.embedder)
    if cfg.reranker:
        index.set_reranker(cfg.reranker)
    return index


def retrieve(cfg: RetrieveConfig, queries: Sequence[dict[str, Any]], index: Any = None) -> list[dict[str, Any]]:
    index = index or open_index(cfg)
    hits = index.search([q["text"] for q in queries], cfg.k, mode=cfg.mode, nprobe=cfg.nprobe, ef_search=cfg.ef_search)
    return [{"query_id": q["id"], "query": q["text"], "hits": [h.to_dict() for h in row]} for q, row in zip(queries, hits)]


# ---------------------------------------------------------------- evaluation

@dataclass
class IndexEvalConfig:
    """Score an index against BEIR-style qrels."""

    index: str | None = option(None, "index directory")
    queries: str | None = option(None, "queries JSONL (id, text) or BEIR queries.jsonl (_id, text)")
    qrels: str | None = option(None, "qrels: BEIR TSV (query-id, corpus-id, score) or JSONL (query_id, doc_id, relevance)")
    ks: tuple[int, ...] = option((1, 5, 10), "cut-offs for Recall/Precision/nDCG")
    mode: str | None = option(None, "dense, bm25 or hybrid (default: the index's method)")
    nprobe: int | None = option(None, "IVF lists to visit")
    ef_search: int | None = option(None, "HNSW beam width")
    out: str | None = option(None, "write the metrics JSON here")

    def check(self) -> list[str]:
        problems = [f"{n}: required" for n in ("index", "queries", "qrels") if not getattr(self, n)]
        if any(k < 1 for k in self.ks):
            problems.append(f"ks: every cut-off must be at least 1, got {list(self.ks)}")
        return problems


def evaluate_index(cfg: IndexEvalConfig, index: Any = None) -> dict[str, Any]:
    from dorag.retrieval.index import RetrievalIndex
    from dorag.retrieval.metrics import evaluate_run, read_qrels

    index = index or RetrievalIndex.load(cfg.index)
    queries = read_queries(cfg.queries)
    qrels = read_qrels(cfg.qrels)
    queries = [q for q in queries if q["id"] in qrels]
    if not queries:
        raise DataError(f"{cfg.qrels}: no query in {cfg.queries} has relevance judgements")
    t0 = time.perf_counter()
    hits = index.search([q["text"] for q in queries], max(cfg.ks), mode=cfg.mode, nprobe=cfg.nprobe, ef_search=cfg.ef_search)
    wall = time.perf_counter() - t0
    run = {q["id"]: [(h.id, h.score) for h in row] for q, row in zip(queries, hits)}
    metrics = evaluate_run(qrels, run, cfg.ks)
    result = {"n_queries": len(queries), "mode": cfg.mode or index.method, "metrics": metrics,
              "query_ms": round(1000 * wall / len(queries), 3)}
    if cfg.out:
        write_json(cfg.out, result)
    return result


# ---------------------------------------------------------------- leakage

@dataclass
class LeakageConfig:
    """Check an index or corpus for a benchmark's solutions and prompts."""

    index: str | None = option(None, "index directory (or give corpus)")
    corpus: str | None = option(None, "corpus JSONL")
    benchmark: str = option("humaneval", "registered benchmark (dorag benchmarks list)")
    benchmark_path: str | None = option(None, "local copy of the benchmark's official file (MBPP, DS-1000)")
    problems: str | None = option(None, "a HumanEval-format JSONL instead of a registered benchmark")
    n: int = option(8, "word n-gram length")
    threshold: float = option(0.5, "flag a document holding at least this fraction of a solution's or prompt's n-grams")
    out: str | None = option(None, "report JSON (default: <index>/leakage-<benchmark>.json)")

    def check(self) -> list[str]:
        problems = []
        if not self.index and not self.corpus:
            problems.append("index: give an index directory or a corpus file")
        if not 0 < self.threshold <= 1:
            problems.append(f"threshold: must be in (0, 1], got {self.threshold}")
        if self.n < 3:
            problems.append(f"n: must be at least 3, got {self.n}")
        return problems


def check_leakage(cfg: LeakageConfig, on_progress: Progress | None = None, write: bool = True) -> dict[str, Any]:
    """Scan the documents; the report goes to `cfg.out` (default: the index directory) unless `write` is off."""
    from dorag.data.leakage import LeakageChecker
    from dorag.evaluation.benchmarks import load_problems
    from dorag.retrieval.index import corpus_hash, read_corpus

    problems = load_problems(cfg.benchmark if not cfg.problems else None, cfg.problems, None, cfg.benchmark_path)
    if cfg.index:
        path = Path(cfg.index)
        if not (path / "manifest.json").is_file():
            raise DataError(f"{path}: not a dorag index (no manifest.json); build one with dorag index build")
        docs = [row for _, row in iter_jsonl_numbered(path / "docs.jsonl")]
    else:
        docs = read_corpus(cfg.corpus)
    t0 = time.perf_counter()
    checker = LeakageChecker(problems, n=cfg.n, threshold=cfg.threshold)
    findings = checker.scan(docs, on_progress=on_progress)
    source = cfg.problems or cfg.benchmark
    report = {"benchmark": source, "corpus_sha256": corpus_hash(docs), "n_docs": len(docs), "n_problems": len(problems),
              "n_flagged": len({f["doc_id"] for f in findings}),
              "n_problems_leaked": len({f["task_id"] for f in findings}), "n": cfg.n, "threshold": cfg.threshold,
              "scan_s": round(time.perf_counter() - t0, 2), "findings": findings}
    out = cfg.out or (str(Path(cfg.index) / f"leakage-{Path(str(source)).stem}.json") if cfg.index else None)
    if out and write:
        write_json(out, report)
        report["report"] = out
    return report


def leakage_for_index(index_dir: str | Path, benchmark: str | None, problems_file: str | None,
                      benchmark_path: str | None, on_progress: Progress | None = None,
                      report_dir: str | Path | None = None) -> dict[str, Any]:
    """The leakage report of an index for a benchmark: a fresh one already in the index directory (from
    `dorag index leakage`) or `report_dir`, else computed and written to `report_dir`.

    Nothing is written into the index directory: it may be a pipeline's output (DVC would see it change)
    or shared read-only between runs.
    """
    from dorag.retrieval.index import MANIFEST

    source = problems_file or benchmark
    name = f"leakage-{Path(str(source)).stem}.json"
    manifest = read_json(Path(index_dir) / MANIFEST)
    for where in [Path(index_dir)] + ([Path(report_dir)] if report_dir else []):
        cached = where / name
        if cached.is_file():
            report = read_json(cached)
            if report.get("corpus_sha256") == manifest["corpus"]["sha256"] and report.get("benchmark") == source:
                return report
    cfg = LeakageConfig(index=str(index_dir), benchmark=benchmark or "humaneval", problems=problems_file,
                        benchmark_path=benchmark_path, out=str(Path(report_dir) / name) if report_dir else None)
    return check_leakage(cfg, on_progress, write=report_dir is not None)


def refuse_leaking_index(report: dict[str, Any], allow: bool) -> None:
    if report["n_flagged"] and not allow:
        ex = report["findings"][0]
        raise ConfigError(f"the index leaks {report['benchmark']}: {report['n_flagged']} document(s) contain solutions or "
                          f"prompts of {report['n_problems_leaked']} problem(s) (e.g. {ex['doc_id']} ~ {ex['task_id']}, "
                          f"{ex['reason']}); see {report.get('report', 'the leakage report')}, drop them from the corpus, "
                          "or pass --allow-leakage")
