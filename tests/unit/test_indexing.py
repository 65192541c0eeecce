"""Index building glue: chunking by the embedder's tokens, build figures, config checks."""

from __future__ import annotations

import pytest

from dorag.core.config import from_dict
from dorag.core.errors import ConfigError
from dorag.experiments.indexing import IndexBuildConfig, embedder_token_counter, load_corpus


def test_chunking_by_embedder_tokens_never_exceeds_what_it_embeds(tmp_path, tiny_embedder_dir):
    src = tmp_path / "pkg"
    src.mkdir()
    long_body = "\n".join(f"    value_{i} = compute_something_{i}(value_{i - 1}, option={i})" for i in range(1, 80))
    (src / "mod.py").write_text(f"def long_function(value_0):\n    \"\"\"A long one.\"\"\"\n{long_body}\n    return value_79\n")
    count, limit = embedder_token_counter(str(tiny_embedder_dir), None)
    assert limit == 126  # the tiny model embeds 128 tokens, less [CLS] and [SEP]
    cfg = IndexBuildConfig(out=str(tmp_path / "idx"), sources=(str(src),), chunk_unit="tokens", max_units=10_000)
    cfg.index.embedder = str(tiny_embedder_dir)
    docs = load_corpus(cfg)
    assert len(docs) > 3 and all(count(d["text"]) <= limit for d in docs)
    words = load_corpus(IndexBuildConfig(out="x", sources=(str(src),)))
    assert len(words) == 1  # 400 words fit in one document, which the embedder would truncate


def test_build_config_checks():
    with pytest.raises(ConfigError, match="shard_id: give both"):
        from_dict(IndexBuildConfig, {"out": "x", "shard_id": 1})
    with pytest.raises(ConfigError, match="out: give the index directory"):
        from_dict(IndexBuildConfig, {})
    with pytest.raises(ConfigError, match="index.nprobe: must be at least 1"):
        from_dict(IndexBuildConfig, {"out": "x", "index": {"nprobe": 0}})


def test_a_killed_dense_build_resumes_from_its_embedded_chunks(tmp_path, tiny_embedder_dir, monkeypatch):
    import numpy as np

    import dorag.retrieval.shards as shards_mod
    from dorag.core.io import write_jsonl
    from dorag.experiments.indexing import build
    from dorag.retrieval.index import RetrievalIndex

    corpus = tmp_path / "docs.jsonl"
    write_jsonl(corpus, [{"id": f"d{i}", "text": f"def f{i}(x):\n    return x * {i} + {i % 3}"} for i in range(17)])
    monkeypatch.setattr(shards_mod, "RESUME_CHUNK", 5)  # 17 documents: 4 chunks
    real, calls = shards_mod.embed_shard, []

    def embed_shard(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while embedding the third chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(shards_mod, "embed_shard", embed_shard)
    cfg = from_dict(IndexBuildConfig, {"out": str(tmp_path / "idx"), "corpus": str(corpus),
                                       "index": {"method": "dense", "embedder": str(tiny_embedder_dir)}})
    with pytest.raises(KeyboardInterrupt):
        build(cfg)
    work = tmp_path / "idx.embedding"
    assert len(list(work.glob("shard-*.npy"))) == 2 and not (tmp_path / "idx").exists()

    calls.clear()
    messages = []
    figures = build(cfg, progress=messages.append)
    assert calls == [2, 3]  # only the chunks the killed run had not finished
    assert "resuming the embedding: 2 of 4 chunks already done (8 of 17 documents)" in messages
    assert not work.exists() and figures["n_docs"] == 17

    monkeypatch.setattr(shards_mod, "RESUME_CHUNK", 100)  # one shot, for comparison
    whole = from_dict(IndexBuildConfig, {**cfg.__dict__, "out": str(tmp_path / "whole"), "index": cfg.index.__dict__})
    build(whole)
    a, b = RetrievalIndex.load(tmp_path / "idx"), RetrievalIndex.load(tmp_path / "whole")
    assert np.allclose(a.dense.reconstruct_n(0, 17), b.dense.reconstruct_n(0, 17), atol=1e-5)  # same vectors
    assert [h.id for h in a.search(["multiply x by 7"], k=5)[0]] == [h.id for h in b.search(["multiply x by 7"], k=5)[0]]
