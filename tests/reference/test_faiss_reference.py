"""FAISS indexes as dorag builds them, against numpy brute force on the same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from dorag.retrieval.index import IndexConfig, fill_faiss, make_faiss, set_search_params


def clustered(n: int, dim: int, centers: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    x = c[rng.integers(0, centers, n)] + 0.35 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ base.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_flat_topk_equals_numpy_brute_force_exactly():
    base, queries = clustered(3000, 64, 40, 0), clustered(200, 64, 40, 1)
    index, _ = make_faiss(IndexConfig(faiss="flat"), 64, len(base))
    fill_faiss(index, base)
    scores, ids = index.search(queries, 10)
    ref_scores, ref_ids = brute_force(base, queries, 10)
    assert (ids == ref_ids).all()
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind, extra, nprobe, floor", [
    ("ivf", {"nlist": 64}, 8, 0.95),       # synthetic clusters: 8 of 64 lists suffice (stdlib text needs 64 of 400)
    ("hnsw", {}, None, 0.95),
    ("ivfpq", {"nlist": 32, "pq_m": 32}, 8, 0.7),  # PQ compresses 64 floats into 32 bytes: recall is lower
])
def test_approximate_indexes_recall_against_flat(kind, extra, nprobe, floor):
    base, queries = clustered(5000, 64, 50, 2), clustered(200, 64, 50, 3)
    index, _ = make_faiss(IndexConfig(faiss=kind, **extra), 64, len(base))
    fill_faiss(index, base)
    set_search_params(index, nprobe=nprobe)
    _, ids = index.search(queries, 10)
    _, truth = brute_force(base, queries, 10)
    assert recall(ids, truth) >= floor


def test_ivf_recall_grows_with_nprobe_and_is_exact_when_probing_all_lists():
    base, queries = clustered(4000, 32, 30, 4), clustered(100, 32, 30, 5)
    index, _ = make_faiss(IndexConfig(faiss="ivf", nlist=50), 32, len(base))
    fill_faiss(index, base)
    _, truth = brute_force(base, queries, 10)
    recalls = []
    for nprobe in (1, 4, 50):
        set_search_params(index, nprobe=nprobe)
        recalls.append(recall(index.search(queries, 10)[1], truth))
    assert recalls[0] <= recalls[1] <= recalls[2] == 1.0
