"""Indexes: build/save/load, every FAISS type, BM25, hybrid, incremental add, shards, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from dorag.core.errors import ConfigError, DataError
from dorag.core.io import write_jsonl
from dorag.retrieval.index import IndexConfig, RetrievalIndex, build_index, code_tokens, read_corpus, rrf_fuse
from dorag.retrieval.shards import embed_shard, merge_shards


@pytest.fixture()
def docs(code_corpus):
    return read_corpus(code_corpus)


def cfg_for(emb_dir: Path, **kw) -> IndexConfig:
    return IndexConfig(embedder=str(emb_dir), **kw)


def test_flat_build_save_load_roundtrip(docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    index, timings = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    before = index.search(["greatest common divisor"], k=4)[0]
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["dense.faiss", "docs.jsonl", "manifest.json"]
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["embedder"]["dim"] == 32 and manifest["corpus"]["n_docs"] == len(docs)
    assert manifest["normalize"] is True and manifest["faiss"]["type"] == "flat"
    loaded = RetrievalIndex.load(tmp_path / "idx")
    after = loaded.search(["greatest common divisor"], k=4)[0]
    assert [h.id for h in after] == [h.id for h in before]
    assert [h.rank for h in after] == [1, 2, 3, 4]
    assert all(a.score >= b.score for a, b in zip(after, after[1:]))
    assert timings["embed_s"] > 0


@pytest.mark.parametrize("kind, extra", [("ivf", {"nlist": 2, "nprobe": 2}), ("hnsw", {}),
                                         ("ivfpq", {"nlist": 1, "pq_m": 8, "pq_nbits": 4})])
def test_every_faiss_type_builds_and_finds_an_exact_copy(kind, extra, docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    index, _ = build_index(docs, cfg_for(tiny_embedder_dir, faiss=kind, **extra), embedder=tiny_embedder)
    index.save(tmp_path / kind)
    loaded = RetrievalIndex.load(tmp_path / kind)
    loaded._embedder = tiny_embedder
    hits = loaded.search([docs[3]["text"]], k=3)[0]
    assert len(hits) == 3
    ids = [h.id for h in hits]
    assert len(set(ids)) == 3 and set(ids) <= {d["id"] for d in docs}
    if kind != "ivfpq":  # a document's own text is its nearest neighbour (PQ recall: tests/reference)
        assert ids[0] == docs[3]["id"]
    assert loaded.manifest["faiss"]["type"] == kind


def test_bm25_ranks_keyword_matches_first(docs, tmp_path):
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    index.save(tmp_path / "bm25")
    loaded = RetrievalIndex.load(tmp_path / "bm25")
    assert loaded.manifest["embedder"] is None
    hits = loaded.search(["flatten a list of lists", "urlsplit"], k=2)
    assert hits[0][0].id == "lists:flatten"
    assert hits[1][0].id == "net:parse_url"
    assert loaded.search(["zzzz-no-such-word"], k=3) == [[]]  # no zero-score filler


def test_code_tokens_split_identifiers():
    assert code_tokens("def parseHTTPResponse(raw_bytes):") == ["parsehttpresponse", "parse", "http", "response",
                                                               "raw_bytes", "raw", "bytes"]


def test_rrf_fuse_matches_hand_computation():
    fused = rrf_fuse([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]], k=60)
    assert [p for p, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)


def test_hybrid_answers_in_all_three_modes(docs, tiny_embedder, tiny_embedder_dir):
    index, _ = build_index(docs, cfg_for(tiny_embedder_dir, method="hybrid"), embedder=tiny_embedder)
    for mode in ("dense", "bm25", "hybrid"):
        hits = index.search(["split a url into scheme host and path"], k=5, mode=mode)[0]
        assert hits and len({h.id for h in hits}) == len(hits)
    assert index.search(["urlsplit scheme host path"], k=1, mode="hybrid")[0][0].id == "net:parse_url"
    dense_only, _ = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    with pytest.raises(ConfigError, match="no BM25 part"):
        dense_only.search(["x"], k=1, mode="bm25")


def test_incremental_add_keeps_old_and_finds_new(docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    for method in ("dense", "hybrid"):
        index, _ = build_index(docs[:-5], cfg_for(tiny_embedder_dir, method=method), embedder=tiny_embedder)
        index.save(tmp_path / method)
        loaded = RetrievalIndex.load(tmp_path / method)
        loaded._embedder = tiny_embedder
        assert loaded.add(docs[-5:]) == 5
        loaded.save(tmp_path / method)
        again = RetrievalIndex.load(tmp_path / method, corpus=docs)  # same corpus as a full build now
        again._embedder = tiny_embedder
        assert len(again) == len(docs)
        assert again.search([docs[-1]["text"]], k=1, mode="dense")[0][0].id == docs[-1]["id"]
        with pytest.raises(DataError, match="already in the index"):
            again.add(docs[:1])


def test_sharded_embedding_merges_to_the_full_embedding(docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    cfg = cfg_for(tiny_embedder_dir)
    shards = tmp_path / "shards"
    for i in (2, 0):
        embed_shard(docs, cfg, shards, i, 3, embedder=tiny_embedder)
    with pytest.raises(DataError, match=r"shards \[1\] of 3 are missing"):
        merge_shards(docs, shards, cfg)
    embed_shard(docs, cfg, shards, 1, 3, embedder=tiny_embedder)
    stamp = (shards / "shard-00001-of-00003.npy").stat().st_mtime_ns
    embed_shard(docs, cfg, shards, 1, 3, embedder=tiny_embedder)  # a re-run job skips a finished shard
    assert (shards / "shard-00001-of-00003.npy").stat().st_mtime_ns == stamp
    merged, _ = merge_shards(docs, shards, cfg)
    full = tiny_embedder.encode([d["text"] for d in docs])
    np.testing.assert_allclose(merged, full, atol=1e-5)
    with pytest.raises(DataError, match="different corpus"):
        merge_shards(docs[:-1], shards, cfg)


# ---------------------------------------------------------------- bad input

def test_empty_corpus_is_refused_and_nothing_is_written(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty corpus"):
        read_corpus(empty)
    with pytest.raises(DataError, match="empty corpus"):
        build_index([], IndexConfig(method="bm25"))


def test_duplicate_ids_are_refused(tmp_path):
    path = tmp_path / "dup.jsonl"
    write_jsonl(path, [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(DataError, match="duplicate document id 'a'"):
        read_corpus(path)


def test_k_must_be_positive(docs):
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    for k in (0, -3):
        with pytest.raises(ConfigError, match=f"k: must be at least 1, got {k}"):
            index.search(["x"], k=k)


def test_dimension_mismatch_is_refused(docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    index, _ = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    index.save(tmp_path / "idx")
    manifest_path = tmp_path / "idx" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["embedder"]["dim"] = 384  # as if built by another model: the vectors no longer match
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="dim 32, the manifest says .* dim 384"):
        RetrievalIndex.load(tmp_path / "idx")


def test_other_embedder_with_other_dim_is_refused(docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    from dorag.retrieval.embedders import Embedder
    from dorag.retrieval.index import check_embedder

    from conftest import build_tiny_embedder

    index, _ = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    other = Embedder(str(build_tiny_embedder(tmp_path / "wide", dim=48)))
    with pytest.raises(ConfigError, match="embedder dimension mismatch: .* 48-d vectors .* 32-d"):
        check_embedder(other, index.manifest["embedder"], tmp_path)
    same_dim = Embedder(str(build_tiny_embedder(tmp_path / "other", dim=32, seed=1)))
    with pytest.raises(ConfigError, match="embedder mismatch"):
        check_embedder(same_dim, index.manifest["embedder"], tmp_path)
    index.save(tmp_path / "idx")
    with pytest.raises(ConfigError, match="was built with embedder"):
        RetrievalIndex.load(tmp_path / "idx", embedder="all-minilm-l6-v2")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_index_file_is_a_clear_error(damage, docs, tiny_embedder, tiny_embedder_dir, tmp_path):
    index, _ = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    index.save(tmp_path / "idx")
    f = tmp_path / "idx" / "dense.faiss"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "garbage":
        f.write_bytes(os.urandom(2048))
    else:
        f.unlink()
    with pytest.raises(DataError, match="rebuild with dorag index build") as err:
        RetrievalIndex.load(tmp_path / "idx")
    assert "\n" not in str(err.value)


def test_edited_documents_are_detected(docs, tmp_path):
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    index.save(tmp_path / "idx")
    p = tmp_path / "idx" / "docs.jsonl"
    p.write_text(p.read_text().replace("Greatest", "Smallest"))
    with pytest.raises(DataError, match="do not match the manifest"):
        RetrievalIndex.load(tmp_path / "idx")
    with pytest.raises(DataError, match="not a dorag index"):
        RetrievalIndex.load(tmp_path)


def test_failed_build_leaves_no_directory_and_keeps_the_old_index(docs, tmp_path, monkeypatch):
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    index.save(tmp_path / "idx")
    before = (tmp_path / "idx" / "docs.jsonl").read_bytes()

    def boom(self, tmp):
        (tmp / "docs.jsonl").write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(RetrievalIndex, "_write", boom)
    with pytest.raises(OSError):
        index.save(tmp_path / "idx")
    with pytest.raises(OSError):
        index.save(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "idx"]  # no temp dirs, no half index
    assert (tmp_path / "idx" / "docs.jsonl").read_bytes() == before


def test_refuses_to_overwrite_a_directory_that_is_not_an_index(docs, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    with pytest.raises(DataError, match="not a dorag index; choose another"):
        index.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cross_encoder_reranks_the_first_stage_candidates(docs, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from dorag.retrieval.embedders import resolve_embedder

    tok = AutoTokenizer.from_pretrained(resolve_embedder("all-minilm-l6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "ce")
    tok.save_pretrained(tmp_path / "ce")
    index, _ = build_index(docs, IndexConfig(method="bm25"))
    first = index.search(["flatten a list of lists"], k=5, depth=5)[0]
    index.set_reranker(str(tmp_path / "ce"))
    reranked = index.search(["flatten a list of lists"], k=5, depth=5)[0]
    assert {h.id for h in reranked} == {h.id for h in first}  # same candidates, new order by CE score
    ce = CrossEncoder(str(tmp_path / "ce"), device="cpu")
    by_id = {h.id: h.text for h in first}
    expected = ce.predict([("flatten a list of lists", by_id[h.id]) for h in reranked])
    assert list(expected) == sorted(expected, reverse=True)
    assert [h.score for h in reranked] == pytest.approx([float(x) for x in expected], abs=1e-5)
    with pytest.raises(ConfigError, match="reranker .* could not be loaded"):
        index.set_reranker(str(tmp_path / "missing-ce"))


def test_search_moves_to_the_gpu_when_faiss_gpu_sees_one(docs, tiny_embedder, tiny_embedder_dir, tmp_path, monkeypatch):
    import faiss

    index, _ = build_index(docs, cfg_for(tiny_embedder_dir), embedder=tiny_embedder)
    cpu_hits = [h.id for h in index.search(["greatest common divisor"], k=3)[0]]
    copies = []

    class FakeGpuIndex:  # stands in for faiss.GpuIndexFlatIP: same search, counted
        def __init__(self, cpu):
            self.cpu, self.ntotal = cpu, cpu.ntotal
            copies.append(self)

        def search(self, x, k):
            return self.cpu.search(x, k)

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", FakeGpuIndex, raising=False)
    assert [h.id for h in index.search(["greatest common divisor"], k=3)[0]] == cpu_hits
    index.search(["again"], k=3)
    assert len(copies) == 1  # copied once, reused
    index.save(tmp_path / "idx")  # the CPU index is what is written
    assert RetrievalIndex.load(tmp_path / "idx").dense.ntotal == len(docs)
    monkeypatch.setenv("DORAG_FAISS_GPU", "0")
    index._gpu = None
    index.search(["x"], k=1)
    assert len(copies) == 1
