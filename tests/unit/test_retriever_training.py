"""Contrastive retriever training on a tiny random BERT bi-encoder: output, summary, resume, sampler, negatives."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dorag.core.config import from_dict, load_config
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import read_json, read_jsonl, write_jsonl
from dorag.data.qrels import write_beir
from dorag.training.retriever_config import RetrieverTrainConfig

pytest.importorskip("sentence_transformers")
pytest.importorskip("datasets")

ROOT = Path(__file__).parents[2]
WORDS = ["sort", "merge", "parse", "encode", "decode", "hash", "split", "join", "read", "write", "send", "fetch",
         "cache", "retry", "sleep", "zip", "copy", "move", "delete", "rename", "lock", "wait", "print", "format",
         "scan", "match", "count", "sum", "max", "min", "round", "clip", "scale", "shift", "rotate", "flip",
         "grow", "shrink", "pack", "unpack"]


def pairs() -> list[dict]:
    """40 pairs; each query and its positive share one distinctive word."""
    return [{"query": f"how do i {w} the items", "positive": f"def {w}_items(items):\n    return {w}(items)\n",
             "category": "text2code" if i % 2 else "hybrid", "positive_id": f"d{i}"} for i, w in enumerate(WORDS)]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A `dorag data synth`-shaped directory whose held-out qrels judge the training pairs themselves."""
    out = tmp_path / "synth"
    ps = pairs()
    write_jsonl(out / "train.jsonl", ps)
    corpus = [{"id": p["positive_id"], "text": p["positive"], "meta": {}} for p in ps]
    queries = [{"_id": f"q{i}", "text": p["query"]} for i, p in enumerate(ps)]
    write_beir(out, corpus, queries, {f"q{i}": {p["positive_id"]: 1} for i, p in enumerate(ps)})
    return out


def config(tmp_path: Path, embedder: Path, data: Path, resume: bool = True, **training) -> RetrieverTrainConfig:
    return from_dict(RetrieverTrainConfig, {
        "embedder": str(embedder), "output_dir": str(tmp_path / "run"), "data": {"train": str(data)}, "resume": resume,
        "training": {"max_steps": 8, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.0, "logging_steps": 1,
                     "eval_steps": 4, "save_steps": 4, "max_seq_length": 32, **training}})


def test_training_writes_a_loadable_model_and_a_summary(tmp_path, tiny_embedder_dir, data_dir, capsys):
    from sentence_transformers import SentenceTransformer

    from dorag.retrieval.embedders import Embedder
    from dorag.training.retriever import METRICS, train_retriever

    lines = []
    res = train_retriever(config(tmp_path, tiny_embedder_dir, data_dir), progress=lines.append)
    assert capsys.readouterr().out == ""  # logs go to the progress callback and metrics.jsonl, not stdout
    assert "step 8/8: loss" in "\n".join(lines) and any(l.startswith("step 4/8: recall@1") for l in lines)
    assert res.steps == 8 and res.model_dir == tmp_path / "run" / "model"
    model = SentenceTransformer(str(res.model_dir), device="cpu")
    assert model.encode(["sort the items"]).shape == (1, 32)
    assert Embedder(str(res.model_dir)).dim == 32  # any embedder option takes the trained directory
    summary = read_json(tmp_path / "run" / "train_summary.json")
    assert summary["batch_sampler"] == "NoDuplicatesBatchSampler" and summary["n_train_pairs"] == 40
    for side in ("before", "after"):
        assert list(summary[side]) == list(METRICS)
        assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in summary[side].values())
    # the held-out queries are the training pairs here, so eight steps must rank them better
    assert summary["after"]["ndcg@10"] > summary["before"]["ndcg@10"]
    assert summary["wall_s"] > 0 and math.isfinite(summary["train_loss"])
    logged = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert any("eval_heldout_cosine_ndcg@10" in m for m in logged)  # the evaluator ran during training
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]


def test_a_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny_embedder_dir, data_dir):
    from dorag.training.retriever import train_retriever

    first = train_retriever(config(tmp_path, tiny_embedder_dir, data_dir, max_steps=4, eval_steps=100))
    again = train_retriever(config(tmp_path, tiny_embedder_dir, data_dir, max_steps=6, eval_steps=100, save_steps=2))
    assert again.summary["resumed_from"] == "checkpoint-4" and again.steps == 6
    assert again.before == first.before  # carried over from the first attempt, not re-measured on a trained model
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train_retriever(config(tmp_path, tiny_embedder_dir, data_dir, resume=False))


def test_batches_never_hold_a_text_twice(tmp_path, tiny_embedder_dir, data_dir):
    from dorag.training.retriever import build_trainer

    ps = pairs()
    twice = ps + [{**p, "query": p["query"] + " again"} for p in ps[:10]]  # ten positives appear twice
    trainer, ir, n_hard = build_trainer(config(tmp_path, tiny_embedder_dir, data_dir), twice, None)
    loader = trainer.get_train_dataloader()
    assert type(loader.batch_sampler).__name__ == "NoDuplicatesBatchSampler" and ir is None and n_hard == 0
    seen = 0
    for batch in loader.batch_sampler:
        positives = [twice[i]["positive"] for i in batch]
        assert len(positives) == len(set(positives))
        seen += len(batch)
    assert seen >= 40


def test_hard_negatives_add_a_negative_column(tmp_path, tiny_embedder_dir, data_dir):
    from dorag.training.retriever import build_trainer

    cfg = config(tmp_path, tiny_embedder_dir, data_dir)
    cfg.hard_negatives.enabled, cfg.hard_negatives.relative_margin, cfg.hard_negatives.range_max = True, None, 10
    trainer, _, n_hard = build_trainer(cfg, pairs(), None)
    assert trainer.train_dataset.column_names == ["anchor", "positive", "negative"] and n_hard == 40
    row = trainer.train_dataset[0]
    assert row["negative"] != row["positive"] and row["negative"] in {p["positive"] for p in pairs()}


def test_method_registry_and_config_errors(tmp_path, data_dir):
    from dorag.training import retriever

    assert list(retriever.METHODS) == ["contrastive", "replug-lsr"]
    with pytest.raises(ConfigError, match="method: invalid value 'rocchio'; choose one of: contrastive, replug-lsr"):
        from_dict(RetrieverTrainConfig, {"method": "rocchio", "data": {"train": str(data_dir)}})
    with pytest.raises(ConfigError, match="data.train"):
        from_dict(RetrieverTrainConfig, {})
    with pytest.raises(ConfigError, match="training.batch_size: in-batch negatives need at least 2"):
        from_dict(RetrieverTrainConfig, {"data": {"train": str(data_dir)}, "training": {"batch_size": 1}})
    # one query per step is fine for replug-lsr (no in-batch negatives)
    assert from_dict(RetrieverTrainConfig, {"method": "replug-lsr", "data": {"train": str(data_dir)},
                                            "training": {"batch_size": 1}}).training.batch_size == 1
    calls = []
    retriever.METHODS["rocchio"] = lambda cfg, progress: calls.append(cfg.method) or "ran"
    try:  # a later method slots in by name
        cfg = from_dict(RetrieverTrainConfig, {"method": "rocchio", "data": {"train": str(data_dir)}})
        assert retriever.train_retriever(cfg) == "ran" and calls == ["rocchio"]
    finally:
        del retriever.METHODS["rocchio"]


def test_shipped_yaml_validates():
    cfg = load_config(RetrieverTrainConfig, ROOT / "configs" / "retriever-contrastive.yaml")
    assert cfg.method == "contrastive" and cfg.data.train == "data/synth" and cfg.training.batch_size >= 2


def test_eval_set_from_files_or_pairs(tmp_path, data_dir):
    from dorag.training.retriever import eval_from_pairs, read_eval_dir

    ev = read_eval_dir(data_dir, max_queries=5, max_corpus=12, seed=0)
    assert len(ev.queries) == 5 and len(ev.corpus) == 12
    assert all(ev.relevant[q] <= set(ev.corpus) for q in ev.queries)  # judged documents are always kept
    train, held = eval_from_pairs(pairs(), 0.25, seed=0)
    assert held is not None and len(train) + len(held.queries) == 40 and len(held.corpus) == 40
    assert not {p["positive"] for p in train} & {held.corpus[d] for r in held.relevant.values() for d in r}
    with pytest.raises(DataError, match="no corpus.jsonl; give a directory written by `dorag data synth`"):
        read_eval_dir(tmp_path, 5, 5, 0)  # an empty directory


def test_too_few_pairs_is_an_error(tmp_path, tiny_embedder_dir):
    from dorag.training.retriever import train_retriever

    one = tmp_path / "one.jsonl"
    write_jsonl(one, pairs()[:1])
    with pytest.raises(DataError, match="in-batch negatives need at least 2"):
        train_retriever(config(tmp_path, tiny_embedder_dir, one))
