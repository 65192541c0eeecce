"""Embedding a corpus in slices saved to disk: shards that separate jobs embed and one build merges
(`dorag index build --shard-id I --num-shards N`, then `--from-shards`), and the chunks that let a killed
plain build resume. Every slice records the corpus hash and the embedder, so a merge refuses slices that do
not belong together."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dorag.core.errors import ConfigError, DataError
from dorag.core.io import read_json, write_json
from dorag.retrieval.embedders import Embedder, canonical_name, same_fingerprint
from dorag.retrieval.index import Document, IndexConfig, corpus_hash, validate_docs

log = logging.getLogger(__name__)


def shard_range(n: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ConfigError(f"shard_id: must be in [0, {num_shards}), got {shard_id} of {num_shards} shards")
    return n * shard_id // num_shards, n * (shard_id + 1) // num_shards


def shard_name(shard_id: int, num_shards: int) -> str:
    return f"shard-{shard_id:05d}-of-{num_shards:05d}"


def embed_shard(docs: Sequence[Document], cfg: IndexConfig, shards_dir: str | Path, shard_id: int, num_shards: int,
                embedder: Embedder | None = None, on_progress: Callable[[int, int], None] | None = None,
                corpus_sha: str | None = None) -> Path:
    """Embed one contiguous slice of the corpus into `<shards_dir>/shard-i-of-n.npy` (+ .json), atomically.
    Every shard records the corpus hash and embedder, so a merge refuses mismatched shards. A caller that
    embeds many slices passes the corpus's hash (`corpus_sha`, the docs already validated), so that the
    whole corpus is not hashed again for every slice."""
    if corpus_sha is None:
        validate_docs(docs)
        corpus_sha = corpus_hash(docs)
    lo, hi = shard_range(len(docs), shard_id, num_shards)
    base = Path(shards_dir) / shard_name(shard_id, num_shards)
    if base.with_suffix(".json").is_file() and base.with_suffix(".npy").is_file():
        info = read_json(base.with_suffix(".json"))
        if info.get("corpus_sha256") == corpus_sha and info["embedder"]["id"] == canonical_name(cfg.embedder):
            log.info("shard %d of %d already embedded: %s", shard_id, num_shards, base)
            return base.with_suffix(".npy")  # re-running a shard job is a no-op (resume)
    embedder = embedder or Embedder(cfg.embedder, max_seq_length=cfg.max_seq_length, dtype=cfg.dtype)
    vecs = embedder.encode([d["text"] for d in docs[lo:hi]], batch_size=cfg.batch_size, normalize=cfg.normalize,
                           on_progress=on_progress)
    shards_dir = Path(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=shards_dir, prefix=".shard.", suffix=".npy")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, vecs)
    os.replace(tmp, base.with_suffix(".npy"))
    write_json(base.with_suffix(".json"), {"shard_id": shard_id, "num_shards": num_shards, "start": lo, "end": hi,
                                           "corpus_sha256": corpus_sha, "n_docs": len(docs),
                                           "embedder": embedder.describe(), "normalize": cfg.normalize})
    return base.with_suffix(".npy")


RESUME_CHUNK = 2048  # documents per saved chunk of a plain build's embedding (what a killed build keeps)


def embed_resumable(docs: Sequence[Document], cfg: IndexConfig, work_dir: str | Path, *, embedder: Embedder | None = None,
                    on_progress: Callable[[int, int], None] | None = None,
                    progress: Callable[[str], None] = lambda m: None) -> tuple[np.ndarray, Embedder, float, int]:
    """Embed `docs` in chunks of RESUME_CHUNK documents, each saved atomically under `work_dir`, so a build
    killed half-way embeds only the chunks it had not finished. Chunks from another corpus, embedder or
    setting are discarded. Returns (vectors, the embedder, and the seconds spent and documents embedded in this
    call)."""
    validate_docs(docs)
    sha = corpus_hash(docs)  # once: hashing the corpus per chunk would make a large build quadratic
    n = max(1, math.ceil(len(docs) / RESUME_CHUNK))
    work_dir = Path(work_dir)
    stamp = {"corpus_sha256": sha, "embedder": canonical_name(cfg.embedder), "num_chunks": n,
             "normalize": cfg.normalize, "max_seq_length": cfg.max_seq_length, "dtype": cfg.dtype}
    stamp_file = work_dir / "chunks.json"
    if work_dir.exists() and (not stamp_file.is_file() or read_json(stamp_file) != stamp):
        shutil.rmtree(work_dir)  # our own cache, written for another corpus or setting
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(stamp_file, stamp)

    def finished(i: int) -> bool:
        base = work_dir / shard_name(i, n)
        return base.with_suffix(".npy").is_file() and base.with_suffix(".json").is_file()

    done = [i for i in range(n) if finished(i)]
    if done:
        kept = sum(hi - lo for lo, hi in (shard_range(len(docs), i, n) for i in done))
        progress(f"resuming the embedding: {len(done)} of {n} chunks already done ({kept:,} of {len(docs):,} documents)")
    embedder = embedder or Embedder(cfg.embedder, max_seq_length=cfg.max_seq_length, dtype=cfg.dtype, progress=progress)
    t0 = time.perf_counter()
    embedded = 0
    for i in range(n):
        lo, hi = shard_range(len(docs), i, n)
        if not finished(i):
            step = (lambda d, _t, lo=lo: on_progress(lo + d, len(docs))) if on_progress else None
            embed_shard(docs, cfg, work_dir, i, n, embedder=embedder, on_progress=step, corpus_sha=sha)
            embedded += hi - lo
        if on_progress:
            on_progress(hi, len(docs))
    seconds = time.perf_counter() - t0
    vectors, _ = merge_shards(docs, work_dir, cfg, corpus_sha=sha)
    return vectors, embedder, seconds, embedded


def merge_shards(docs: Sequence[Document], shards_dir: str | Path, cfg: IndexConfig,
                 corpus_sha: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Stack the shard embeddings in order, after checking they cover the corpus with one embedder."""
    shards_dir = Path(shards_dir)
    metas = sorted(shards_dir.glob("shard-*-of-*.json"))
    if not metas:
        raise DataError(f"{shards_dir}: no embedding shards (run dorag index build --shard-id I --num-shards N first)")
    infos = [read_json(p) for p in metas]
    num = infos[0]["num_shards"]
    have = {i["shard_id"] for i in infos if i["num_shards"] == num}
    missing = sorted(set(range(num)) - have)
    if missing:
        raise DataError(f"{shards_dir}: shards {missing[:10]} of {num} are missing; embed them before merging")
    sha = corpus_sha or corpus_hash(docs)
    if any(i["corpus_sha256"] != sha for i in infos):
        raise DataError(f"{shards_dir}: shards were embedded from a different corpus; re-embed them")
    emb = infos[0]["embedder"]
    if any(i["embedder"]["id"] != emb["id"] or not same_fingerprint(i["embedder"]["fingerprint"], emb["fingerprint"])
           for i in infos):
        raise DataError(f"{shards_dir}: shards were embedded with different embedders; re-embed them with one")
    if canonical_name(cfg.embedder) != emb["id"]:
        raise ConfigError(f"index.embedder: shards were embedded with {emb['id']!r}, not {cfg.embedder!r}")
    parts = []
    for info in sorted(infos, key=lambda i: i["shard_id"]):
        arr = np.load(shards_dir / (shard_name(info["shard_id"], num) + ".npy"))
        if arr.shape != (info["end"] - info["start"], emb["dim"]):
            raise DataError(f"{shards_dir}: shard {info['shard_id']} has shape {arr.shape}, expected "
                            f"({info['end'] - info['start']}, {emb['dim']}); re-embed it")
        parts.append(arr)
    return np.concatenate(parts, axis=0), emb
