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
