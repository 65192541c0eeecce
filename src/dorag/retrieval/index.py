"""Retrieval indexes over a corpus: FAISS (flat, IVF, HNSW, IVF-PQ), BM25 (bm25s), and hybrid RRF.

An index is a directory:

    manifest.json   format, method, embedder {id, dim, fingerprint}, normalisation, corpus {n_docs,
                    sha256}, FAISS type and parameters, BM25 parameters
    docs.jsonl      the documents, row i = FAISS vector i = BM25 document i
    dense.faiss     the FAISS index (dense and hybrid)
    bm25/           the bm25s index (bm25 and hybrid)

It is written to a temporary sibling directory and renamed into place, so a failed or interrupted build
leaves no half-written index (and an existing index stays as it was). Loading checks every file against
the manifest, and refuses a different embedder or corpus with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dorag.core.config import at_least_one, option
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import iter_jsonl_numbered, read_json, write_json
from dorag.core.require import require
from dorag.retrieval.embedders import DEFAULT_EMBEDDER, Embedder, canonical_name, same_fingerprint

log = logging.getLogger(__name__)

FORMAT = "dorag-index/1"
MANIFEST = "manifest.json"
DOCS = "docs.jsonl"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
Document = dict[str, Any]
Method = Literal["dense", "bm25", "hybrid"]


@dataclass
class IndexConfig:
    """How a corpus becomes an index."""

    method: Method = option("dense", "dense (FAISS over embeddings), bm25 (bm25s), or hybrid (both, fused by RRF)")
    faiss: Literal["flat", "ivf", "hnsw", "ivfpq"] = option("flat", "FAISS index type for dense and hybrid")
    embedder: str = option(DEFAULT_EMBEDDER, "sentence-transformers model: packaged name, local path or Hub id")
    normalize: bool = option(True, "L2-normalise vectors, so inner product is cosine similarity")
    batch_size: int = option(64, "embedding batch size")
    max_seq_length: int | None = option(None, "embedder truncation length in tokens (default: the model's own)")
    dtype: Literal["float32", "bfloat16"] = option("float32", "embedder precision; bfloat16 is faster on AMX CPUs and GPUs")
    nlist: int | None = option(None, "IVF lists (default: about 4*sqrt(N), with at least 39 training points per list)")
    nprobe: int = option(64, "IVF lists visited per query; 64 of the automatic 400 lists gives recall@10 0.976 "
                             "against flat on the stdlib index (bench/retrieval.py); can be changed at query time")
    hnsw_m: int = option(32, "HNSW graph degree")
    ef_construction: int = option(200, "HNSW build-time beam width")
    ef_search: int = option(128, "HNSW query-time beam width")
    pq_m: int | None = option(None, "IVF-PQ sub-quantizers; must divide the dimension (default: dim/8)")
    pq_nbits: int = option(8, "bits per IVF-PQ code")
    bm25_k1: float = option(1.5, "BM25 k1")
    bm25_b: float = option(0.75, "BM25 b")
    rrf_k: int = option(60, "reciprocal rank fusion constant (hybrid)")

    def check(self) -> list[str]:
        problems = []
        problems += at_least_one(self, ("batch_size", "nprobe", "hnsw_m", "ef_construction", "ef_search", "pq_nbits", "rrf_k"))
        if self.nlist is not None and self.nlist < 1:
            problems.append(f"nlist: must be at least 1, got {self.nlist}")
        if self.pq_m is not None and self.pq_m < 1:
            problems.append(f"pq_m: must be at least 1, got {self.pq_m}")
        return problems


@dataclass
class Hit:
    id: str
    score: float
    rank: int
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, snippet_chars: int | None = None) -> dict[str, Any]:
        text = self.text if snippet_chars is None else self.text[:snippet_chars]
        return {"id": self.id, "score": round(self.score, 6), "rank": self.rank, "text": text, "meta": self.meta}


# ---------------------------------------------------------------- corpus checks and hashing

def validate_docs(docs: Sequence[Document], source: str = "corpus") -> None:
    if not docs:
        raise DataError(f"{source}: empty corpus (no documents); build one with dorag data corpus")
    seen: dict[str, int] = {}
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not d.get("id") or not isinstance(d.get("text"), str):
            raise DataError(f"{source}: document {i + 1} needs a non-empty 'id' and a 'text' string")
        if d["id"] in seen:
            raise DataError(f"{source}: duplicate document id {d['id']!r} (documents {seen[d['id']] + 1} and {i + 1})")
        seen[d["id"]] = i


def corpus_hash(docs: Iterable[Document]) -> str:
    """SHA-256 over the ids and texts in order: the identity of a corpus, independent of meta."""
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps([d["id"], d["text"]], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def read_corpus(path: str | Path) -> list[Document]:
    """A corpus JSONL (`id, text, meta`); a bad line or an empty file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: corpus file not found (build one with dorag data corpus)")
    docs = []
    for line, row in iter_jsonl_numbered(path):
        if not row.get("id") or not isinstance(row.get("text"), str):
            raise DataError(f"{path}:{line}: a corpus document needs a non-empty 'id' and a 'text' string")
        docs.append({"id": str(row["id"]), "text": row["text"], "meta": row.get("meta") or {}})
    validate_docs(docs, str(path))
    return docs


# ---------------------------------------------------------------- BM25 tokenisation

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have if in into is it its of on or that the this to was were "
    "will with self def return none true false not".split())


def code_tokens(text: str) -> list[str]:
    """Words for BM25: identifiers lower-cased, plus their snake_case and camelCase parts."""
    out = []
    for word in _WORD.findall(text):
        low = word.lower()
        if low not in STOPWORDS:
            out.append(low)
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            out.extend(p for p in parts if p not in STOPWORDS and len(p) > 1)
    return out


# ---------------------------------------------------------------- FAISS construction

def auto_nlist(n: int) -> int:
    """About 4*sqrt(N) lists, but at least 39 training points per list (FAISS's minimum), at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _faiss():
    return require("faiss", extra="rag", package="faiss-cpu")


def make_faiss(cfg: IndexConfig, dim: int, n: int) -> tuple[Any, dict[str, Any]]:
    """An empty FAISS index for `cfg` and the parameters it was made with."""
    faiss = _faiss()
    metric = faiss.METRIC_INNER_PRODUCT
    params: dict[str, Any] = {"type": cfg.faiss, "metric": "inner_product"}
    if cfg.faiss == "flat":
        index = faiss.IndexFlatIP(dim)
    elif cfg.faiss == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, metric)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        params.update(hnsw_m=cfg.hnsw_m, ef_construction=cfg.ef_construction, ef_search=cfg.ef_search)
    else:
        nlist = cfg.nlist or auto_nlist(n)
        if nlist > n:
            raise ConfigError(f"index.nlist: {nlist} lists need at least as many documents; the corpus has {n}")
        quantizer = faiss.IndexFlatIP(dim)
        if cfg.faiss == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        else:
            m = cfg.pq_m or max(1, dim // 8)
            if dim % m:
                raise ConfigError(f"index.pq_m: {m} must divide the embedding dimension {dim}")
            if n < 2 ** cfg.pq_nbits:
                raise ConfigError(f"index.pq_nbits: {cfg.pq_nbits}-bit codes need at least {2 ** cfg.pq_nbits} "
                                  f"documents to train; the corpus has {n} (lower pq_nbits or use ivf)")
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, cfg.pq_nbits, metric)
            params.update(pq_m=m, pq_nbits=cfg.pq_nbits)
        index.nprobe = min(cfg.nprobe, nlist)
        params.update(nlist=nlist, nprobe=cfg.nprobe)
    return index, params


def fill_faiss(index: Any, vectors: np.ndarray, seed: int = 0) -> None:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not index.is_trained:
        if hasattr(index, "cp"):
            index.cp.seed = seed
        index.train(vectors)
    index.add(vectors)


def set_search_params(index: Any, nprobe: int | None = None, ef_search: int | None = None) -> None:
    if nprobe is not None and hasattr(index, "nprobe"):
        index.nprobe = min(nprobe, index.nlist)
    if ef_search is not None and hasattr(index, "hnsw"):
        index.hnsw.efSearch = ef_search


# ---------------------------------------------------------------- the index

class RetrievalIndex:
    """Documents plus a dense (FAISS) and/or sparse (BM25) index over them, as saved in an index dir."""

    def __init__(self, docs: list[Document], manifest: dict[str, Any], dense: Any = None, bm25: Any = None,
                 embedder: Embedder | None = None, path: Path | None = None) -> None:
        self.docs = docs
        self.manifest = manifest
        self.dense = dense
        self.bm25 = bm25
        self._embedder = embedder
        self.path = path
        self.reranker: Any = None
        self._gpu: Any = None  # a GPU copy of `dense` for search, when faiss-gpu sees a GPU

    # -- properties
    @property
    def method(self) -> Method:
        return self.manifest["method"]

    @property
    def dim(self) -> int | None:
        emb = self.manifest.get("embedder")
        return emb["dim"] if emb else None

    def __len__(self) -> int:
        return len(self.docs)

    def embedder(self) -> Embedder:
        """The embedder the index was built with (loaded on first use and checked against the manifest)."""
        if self._embedder is None:
            info = self.manifest["embedder"]
            self._embedder = Embedder(info["id"], max_seq_length=info.get("max_seq_length"),
                                      dtype=info.get("dtype", "float32"))
            check_embedder(self._embedder, info, self.path)
        return self._embedder

    # -- search
    def search(self, queries: Sequence[str], k: int = 10, *, mode: Method | None = None,
               nprobe: int | None = None, ef_search: int | None = None, depth: int | None = None) -> list[list[Hit]]:
        """Top-`k` documents for each query, best first.

        Args:
            mode: dense, bm25 or hybrid (default: the index's method; hybrid needs a hybrid index).
            nprobe, ef_search: override the IVF/HNSW query parameters.
            depth: candidates per retriever before fusion or reranking (default: max(k, 50)).
        """
        check_k(k)
        mode = mode or self.method
        if mode in ("dense", "hybrid") and self.dense is None:
            raise ConfigError(f"mode {mode}: this index has no dense part (method {self.method}); rebuild with "
                              "index.method=dense or hybrid")
        if mode in ("bm25", "hybrid") and self.bm25 is None:
            raise ConfigError(f"mode {mode}: this index has no BM25 part (method {self.method}); rebuild with "
                              "index.method=bm25 or hybrid")
        queries = list(queries)
        if not queries:
            return []
        k = min(k, len(self.docs))
        depth = min(max(depth or 50, k), len(self.docs))
        first_k = depth if (mode == "hybrid" or self.reranker is not None) else k
        if mode == "dense":
            ranked = self._dense(queries, first_k, nprobe, ef_search)
        elif mode == "bm25":
            ranked = self._bm25(queries, first_k)
        else:
            rrf = self.manifest.get("rrf_k", 60)
            ranked = [rrf_fuse([d, s], rrf) for d, s in zip(self._dense(queries, depth, nprobe, ef_search),
                                                            self._bm25(queries, depth))]
        if self.reranker is not None:
            ranked = self._rerank(queries, ranked)
        return [[self._hit(pos, score, r) for r, (pos, score) in enumerate(row[:k], start=1)] for row in ranked]

    def _hit(self, pos: int, score: float, rank: int) -> Hit:
        d = self.docs[pos]
        return Hit(d["id"], float(score), rank, d["text"], d.get("meta") or {})

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        emb = self.embedder()
        info = self.manifest["embedder"]
        return emb.encode(list(queries), batch_size=info.get("batch_size", 64), normalize=self.manifest["normalize"])

    def search_vectors(self, vectors: np.ndarray, k: int, nprobe: int | None = None,
                       ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search; query-time parameters default to the manifest's, so an override is per call."""
        params = self.manifest.get("faiss") or {}
        set_search_params(self.dense, nprobe if nprobe is not None else params.get("nprobe"),
                          ef_search if ef_search is not None else params.get("ef_search"))
        index = self.dense
        if self.dense.ntotal and gpu_enabled():
            if self._gpu is None or self._gpu.ntotal != self.dense.ntotal:
                self._gpu = to_gpu(self.dense)
            if self._gpu is not False:
                index = self._gpu
                set_search_params(index, nprobe if nprobe is not None else params.get("nprobe"), None)
        scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return scores, ids

    def _dense(self, queries: Sequence[str], k: int, nprobe: int | None, ef_search: int | None) -> list[list[tuple[int, float]]]:
        scores, ids = self.search_vectors(self.embed_queries(queries), k, nprobe, ef_search)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(ids, scores)]

    def _bm25(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        toks = [code_tokens(q) or ["<empty>"] for q in queries]
        ids, scores = self.bm25.retrieve(toks, k=k, show_progress=False, n_threads=1)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if s > 0] for row_i, row_s in zip(ids, scores)]

    def _rerank(self, queries: Sequence[str], ranked: list[list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
        out = []
        for q, row in zip(queries, ranked):
            if not row:
                out.append(row)
                continue
            scores = self.reranker.predict([(q, self.docs[pos]["text"]) for pos, _ in row], show_progress_bar=False)
            out.append(sorted(((pos, float(s)) for (pos, _), s in zip(row, scores)), key=lambda t: -t[1]))
        return out

    def set_reranker(self, name: str | None) -> None:
        """Rerank first-stage candidates with a sentence-transformers CrossEncoder (by path or Hub id)."""
        if not name:
            self.reranker = None
            return
        st = require("sentence_transformers", extra="rag", package="sentence-transformers")
        try:
            self.reranker = st.CrossEncoder(name, device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"reranker {name!r} could not be loaded ({str(exc).splitlines()[0][:160]}); give a local "
                              "cross-encoder directory, or a Hub id when online") from None

    # -- persistence
    def save(self, path: str | Path) -> Path:
        """Write the index directory atomically (a temporary sibling renamed over `path`)."""
        path = Path(path)
        with staged_dir(path) as tmp:
            self._write(tmp)
        self.path = path
        return path

    def _write(self, tmp: Path) -> None:
        with open(tmp / DOCS, "w", encoding="utf-8") as fh:
            for d in self.docs:
                fh.write(json.dumps({"id": d["id"], "text": d["text"], "meta": d.get("meta") or {}}, ensure_ascii=False) + "\n")
        if self.dense is not None:
            _faiss().write_index(self.dense, str(tmp / DENSE))
        if self.bm25 is not None:
            self.bm25.save(str(tmp / BM25_DIR), show_progress=False)
        write_json(tmp / MANIFEST, self.manifest)

    @classmethod
    def load(cls, path: str | Path, *, embedder: str | None = None, corpus: Sequence[Document] | None = None) -> RetrievalIndex:
        """Open an index directory, checking it against its manifest.

        Args:
            embedder: refuse the index unless it was built with this embedder.
            corpus: refuse the index unless it was built from these documents.
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: index directory not found (build one with dorag index build)")
        if not (path / MANIFEST).is_file():
            raise DataError(f"{path}: not a dorag index (no {MANIFEST}); rebuild it with dorag index build")
        manifest = read_json(path / MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DataError(f"{path}/{MANIFEST}: unknown index format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                            f"(expected {FORMAT}); rebuild with dorag index build")
        if embedder is not None and manifest.get("embedder"):
            want, have = canonical_name(embedder), manifest["embedder"]["id"]
            if want != have:
                raise ConfigError(f"index {path} was built with embedder {have!r}, not {want!r}; query it with its own "
                                  f"embedder or rebuild it with index.embedder={embedder}")
        docs = []
        try:
            for _, row in iter_jsonl_numbered(path / DOCS):
                docs.append(row)
        except DataError as exc:
            raise DataError(f"corrupt index: {exc}; rebuild with dorag index build") from None
        n = manifest["corpus"]["n_docs"]
        if len(docs) != n or corpus_hash(docs) != manifest["corpus"]["sha256"]:
            raise DataError(f"{path}/{DOCS}: the documents do not match the manifest ({len(docs)} vs {n} documents or a "
                            "changed text); the index is corrupt, rebuild with dorag index build")
        if corpus is not None and corpus_hash(corpus) != manifest["corpus"]["sha256"]:
            raise DataError(f"index {path} was built from a different corpus ({n} documents, sha256 "
                            f"{manifest['corpus']['sha256'][:12]}); rebuild it with dorag index build")
        dense = bm25 = None
        if manifest["method"] in ("dense", "hybrid"):
            dense = _read_faiss(path / DENSE)
            if dense.ntotal != n or dense.d != manifest["embedder"]["dim"]:
                raise DataError(f"{path}/{DENSE}: holds {dense.ntotal} vectors of dim {dense.d}, the manifest says {n} of "
                                f"dim {manifest['embedder']['dim']}; the index is corrupt, rebuild with dorag index build")
            set_search_params(dense, manifest["faiss"].get("nprobe"), manifest["faiss"].get("ef_search"))
        if manifest["method"] in ("bm25", "hybrid"):
            bm25 = _read_bm25(path / BM25_DIR)
        return cls(docs, manifest, dense, bm25, path=path)

    # -- incremental add
    def add(self, new_docs: Sequence[Document], on_progress: Callable[[int, int], None] | None = None) -> int:
        """Append documents (embedding only the new ones; IVF/PQ reuse the trained quantizer). Returns the
        number added; call `save` to persist."""
        new_docs = list(new_docs)
        validate_docs(new_docs, "new documents")
        known = {d["id"] for d in self.docs}
        clash = [d["id"] for d in new_docs if d["id"] in known]
        if clash:
            raise DataError(f"{len(clash)} new document id(s) already in the index, e.g. {clash[0]!r}; give new ids")
        if self.dense is not None:
            vecs = self.embedder().encode([d["text"] for d in new_docs], batch_size=self.manifest["embedder"].get("batch_size", 64),
                                          normalize=self.manifest["normalize"], on_progress=on_progress)
            self.dense.add(vecs)
        self.docs.extend({"id": d["id"], "text": d["text"], "meta": d.get("meta") or {}} for d in new_docs)
        if self.bm25 is not None:
            self.bm25 = _build_bm25([d["text"] for d in self.docs], self.manifest["bm25"])
        self.manifest["corpus"] = {"n_docs": len(self.docs), "sha256": corpus_hash(self.docs)}
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return len(new_docs)


def gpu_enabled() -> bool:
    """faiss-gpu with at least one visible GPU, unless DORAG_FAISS_GPU=0."""
    if os.environ.get("DORAG_FAISS_GPU") == "0":
        return False
    faiss = _faiss()
    return bool(getattr(faiss, "get_num_gpus", lambda: 0)())


def to_gpu(index: Any) -> Any:
    """A GPU copy of a CPU index for search (flat and IVF types), or False when this type has no GPU
    version (HNSW): the CPU index keeps serving, and saving always writes the CPU index."""
    faiss = _faiss()
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError) as exc:
        log.info("FAISS index stays on CPU: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False


def check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k: must be at least 1, got {k}")


def check_embedder(emb: Embedder, info: dict[str, Any], path: Path | None) -> None:
    where = f"index {path}" if path else "the index"
    if emb.dim != info["dim"]:
        raise ConfigError(f"embedder dimension mismatch: {emb.name} gives {emb.dim}-d vectors but {where} holds "
                          f"{info['dim']}-d vectors from {info['id']}; use that embedder or rebuild the index")
    if info.get("fingerprint") and not same_fingerprint(emb.fingerprint(), info["fingerprint"]):
        raise ConfigError(f"embedder mismatch: {emb.name} is not the model {where} was built with (its embeddings "
                          "differ); use the original model or rebuild the index")


def rrf_fuse(rankings: Sequence[Sequence[tuple[int, float]]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion (Cormack et al. 2009): score(d) = sum over rankings of 1 / (k + rank)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (pos, _) in enumerate(ranking, start=1):
            scores[pos] = scores.get(pos, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda t: (-t[1], t[0]))


def _read_faiss(path: Path) -> Any:
    faiss = _faiss()
    if not path.is_file():
        raise DataError(f"{path}: index file missing; rebuild with dorag index build")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise DataError(f"{path}: corrupt index file ({reason}); rebuild with dorag index build") from None


def _bm25s() -> Any:
    bm25s = require("bm25s", extra="rag")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on its logger when imported
    return bm25s


def _build_bm25(texts: Sequence[str], params: dict[str, Any]) -> Any:
    bm25s = _bm25s()
    retriever = bm25s.BM25(k1=params["k1"], b=params["b"])
    retriever.index([code_tokens(t) or ["<empty>"] for t in texts], show_progress=False)
    return retriever


def _read_bm25(path: Path) -> Any:
    bm25s = _bm25s()
    if not path.is_dir():
        raise DataError(f"{path}: BM25 index missing; rebuild with dorag index build")
    try:
        return bm25s.BM25.load(str(path), show_progress=False)
    except Exception as exc:  # bm25s raises ValueError/OSError/JSONDecodeError on damaged files
        raise DataError(f"{path}: corrupt BM25 index ({type(exc).__name__}: {str(exc)[:120]}); rebuild with "
                        "dorag index build") from None


class staged_dir:
    """Build a directory beside `dest` and rename it into place on success (removing it on failure)."""

    def __init__(self, dest: Path) -> None:
        self.dest = Path(dest)

    def __enter__(self) -> Path:
        if self.dest.exists() and not (self.dest / MANIFEST).is_file() and any(self.dest.iterdir()):
            raise DataError(f"{self.dest}: exists and is not a dorag index; choose another output directory")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{os.getpid()}")
            os.replace(self.dest, old)
        os.replace(self.tmp, self.dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- building

def build_index(docs: Sequence[Document], cfg: IndexConfig, *, embedder: Embedder | None = None,
                vectors: np.ndarray | None = None, on_progress: Callable[[int, int], None] | None = None,
                progress: Callable[[str], None] = lambda m: None) -> tuple[RetrievalIndex, dict[str, float]]:
    """Embed (unless `vectors` are given, e.g. merged shards) and index `docs`. Returns the index (not yet
    saved) and timings: embed_s, index_s, docs_per_s."""
    docs = [{"id": d["id"], "text": d["text"], "meta": d.get("meta") or {}} for d in docs]
    validate_docs(docs)
    manifest: dict[str, Any] = {
        "format": FORMAT, "method": cfg.method, "normalize": cfg.normalize,
        "corpus": {"n_docs": len(docs), "sha256": corpus_hash(docs)},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": asdict(cfg),
    }
    timings: dict[str, float] = {"embed_s": 0.0, "index_s": 0.0}
    dense = bm25 = None
    if cfg.method in ("dense", "hybrid"):
        embedder = embedder or Embedder(cfg.embedder, max_seq_length=cfg.max_seq_length, dtype=cfg.dtype, progress=progress)
        manifest["embedder"] = {**embedder.describe(), "batch_size": cfg.batch_size}
        if vectors is None:
            t0 = time.perf_counter()
            vectors = embedder.encode([d["text"] for d in docs], batch_size=cfg.batch_size, normalize=cfg.normalize,
                                      on_progress=on_progress)
            timings["embed_s"] = time.perf_counter() - t0
            timings["docs_per_s"] = len(docs) / timings["embed_s"] if timings["embed_s"] > 0 else 0.0
        elif vectors.shape != (len(docs), embedder.dim):
            raise DataError(f"embeddings have shape {vectors.shape}, expected ({len(docs)}, {embedder.dim}) for this "
                            "corpus and embedder; re-embed the shards")
        t0 = time.perf_counter()
        dense, params = make_faiss(cfg, embedder.dim, len(docs))
        fill_faiss(dense, vectors)
        timings["index_s"] = time.perf_counter() - t0
        manifest["faiss"] = params
    else:
        manifest["embedder"] = None
    if cfg.method in ("bm25", "hybrid"):
        t0 = time.perf_counter()
        manifest["bm25"] = {"k1": cfg.bm25_k1, "b": cfg.bm25_b, "tokenizer": "dorag.code_tokens/1"}
        bm25 = _build_bm25([d["text"] for d in docs], manifest["bm25"])
        timings["bm25_s"] = time.perf_counter() - t0
    manifest["rrf_k"] = cfg.rrf_k
    return RetrievalIndex(docs, manifest, dense, bm25, embedder), timings


def dir_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
