"""`dorag train-retriever`: fine-tune a sentence-transformers bi-encoder on (query, positive) pairs.

Method "contrastive" is sentence-transformers' own recipe: SentenceTransformerTrainer with
MultipleNegativesRankingLoss (InfoNCE with in-batch negatives, Henderson et al. 2017; every other
positive of the batch is a negative), the NO_DUPLICATES batch sampler (a text twice in one batch would
be its own false negative), optional hard negatives mined with the base model, and an
InformationRetrievalEvaluator on held-out qrels every `eval_steps` (Recall@1/5/10, nDCG@10, MRR@10).

Output: ``<output_dir>/model``, a sentence-transformers directory that any embedder option accepts
(`dorag index build --embedder <output_dir>/model`), and ``train_summary.json`` with the metrics before and
after, wall time and steps. Checkpoints go to ``<output_dir>/checkpoints``; a re-run resumes from the last.
Methods live in `METHODS`: "contrastive" here, "replug-lsr" (REPLUG LSR, Shi et al. 2023) in training.replug.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dorag.core.errors import ConfigError, DataError
from dorag.core.io import iter_jsonl_numbered, write_json
from dorag.core.require import require
from dorag.core.runs import RunDir
from dorag.training.retriever_config import RetrieverTrainConfig
from dorag.training.sft import last_checkpoint

log = logging.getLogger(__name__)
MODEL_DIR = "model"
METRICS = ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr@10")


@dataclass
class EvalSet:
    """Held-out queries, the corpus they are ranked in, and which documents are relevant."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]


@dataclass
class RetrieverResult:
    model_dir: Path
    steps: int
    wall_s: float  # this run's training time (a resumed run counts its own steps only)
    before: dict[str, float] | None
    after: dict[str, float] | None
    train_loss: float | None
    summary: dict[str, Any]


# ---------------------------------------------------------------- data

def train_file(cfg: RetrieverTrainConfig) -> Path:
    path = Path(cfg.data.train or "")
    return path / "train.jsonl" if path.is_dir() else path


def eval_dir(cfg: RetrieverTrainConfig) -> Path | None:
    """The BEIR directory to score on: data.eval_dir, or the train file's directory when it holds qrels."""
    if cfg.data.eval_dir:
        return Path(cfg.data.eval_dir)
    here = train_file(cfg).parent
    return here if (here / "qrels" / "test.tsv").is_file() and (here / "corpus.jsonl").is_file() else None


def read_eval_dir(path: Path, max_queries: int, max_corpus: int, seed: int) -> EvalSet:
    """BEIR files as written by `dorag data synth` (or any BEIR dataset), capped with the seed."""
    from dorag.data.corpus import from_table
    from dorag.retrieval.metrics import read_qrels

    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        if not (path / name).is_file():
            raise DataError(f"{path}: no {name}; give a directory written by `dorag data synth` (or BEIR's layout)")
    qrels = read_qrels(path / "qrels" / "test.tsv")
    queries = {}
    for line, row in iter_jsonl_numbered(path / "queries.jsonl"):
        qid, text = row.get("_id", row.get("id")), row.get("text")
        if qid is None or not isinstance(text, str):
            raise DataError(f"{path / 'queries.jsonl'}:{line}: a query needs '_id' and 'text'")
        queries[str(qid)] = text
    corpus = {d["id"]: d["text"] for d in from_table(path / "corpus.jsonl")}
    relevant = {q: {d for d, r in docs.items() if r > 0 and d in corpus} for q, docs in qrels.items() if q in queries}
    return cap_eval(EvalSet(queries, corpus, {q: r for q, r in relevant.items() if r}), max_queries, max_corpus, seed)


def eval_from_pairs(pairs: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict[str, Any]], EvalSet | None]:
    """Hold out `fraction` of the pairs (by positive text); the corpus is every distinct positive."""
    if fraction <= 0:
        return pairs, None
    texts = sorted({p["positive"] for p in pairs})
    ids = {t: f"d{i}" for i, t in enumerate(texts)}
    rng = random.Random(seed)
    held = set(rng.sample(texts, max(1, int(len(texts) * fraction)))) if len(texts) > 1 else set()
    train = [p for p in pairs if p["positive"] not in held]
    evals = [p for p in pairs if p["positive"] in held]
    if not evals or not train:
        return pairs, None
    queries = {f"q{i}": p["query"] for i, p in enumerate(evals)}
    relevant = {f"q{i}": {ids[p["positive"]]} for i, p in enumerate(evals)}
    return train, EvalSet(queries, {i: t for t, i in ids.items()}, relevant)


def cap_eval(ev: EvalSet, max_queries: int, max_corpus: int, seed: int) -> EvalSet:
    rng = random.Random(seed)
    qids = sorted(ev.relevant)
    if len(qids) > max_queries:
        qids = sorted(rng.sample(qids, max_queries))
    judged = {d for q in qids for d in ev.relevant[q]}
    others = sorted(set(ev.corpus) - judged)
    if len(judged) + len(others) > max_corpus:
        others = sorted(rng.sample(others, max(0, max_corpus - len(judged))))
    keep = judged | set(others)
    return EvalSet({q: ev.queries[q] for q in qids}, {d: t for d, t in ev.corpus.items() if d in keep},
                   {q: ev.relevant[q] for q in qids})


# ---------------------------------------------------------------- sentence-transformers pieces

def _st() -> SimpleNamespace:
    """sentence-transformers' training API (its v5+ module layout; the older top-level names otherwise)."""
    st = require("sentence_transformers", extra="retriever", package="sentence-transformers")
    require("datasets", extra="retriever")
    try:
        from sentence_transformers.base.sampler import BatchSamplers
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # older layout
        from sentence_transformers.evaluation import InformationRetrievalEvaluator
        from sentence_transformers.losses import MultipleNegativesRankingLoss
        from sentence_transformers.training_args import BatchSamplers
    return SimpleNamespace(SentenceTransformer=st.SentenceTransformer, Trainer=st.SentenceTransformerTrainer,
                           Args=st.SentenceTransformerTrainingArguments, BatchSamplers=BatchSamplers,
                           IREvaluator=InformationRetrievalEvaluator, MNRLoss=MultipleNegativesRankingLoss,
                           mine_hard_negatives=st.util.mine_hard_negatives)


def evaluator(ev: EvalSet, batch_size: int) -> Any:
    return _st().IREvaluator(ev.queries, ev.corpus, ev.relevant, mrr_at_k=[10], ndcg_at_k=[10],
                             accuracy_at_k=[1, 5, 10], precision_recall_at_k=[1, 5, 10], map_at_k=[10],
                             batch_size=batch_size, name="heldout", write_csv=False, show_progress_bar=False)


def ir_metrics(scores: dict[str, float]) -> dict[str, float]:
    """Recall@1/5/10, nDCG@10, MRR@10 from the evaluator's ``heldout_cosine_recall@1``-style keys."""
    out = {}
    for key, value in scores.items():
        name = key.rsplit("_", 1)[-1]
        if name in METRICS:
            out[name] = round(float(value), 6)
    return {k: out[k] for k in METRICS if k in out}


def _precision(requested: str, torch: Any) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _callback(run: RunDir | None, progress: Callable[[str], None]) -> Any:
    """Mirror the Trainer's logs into metrics.jsonl and, in short, to `progress` (instead of stdout)."""
    transformers = require("transformers", extra="models")

    class RunLogger(transformers.TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            if not numbers:
                return
            if run is not None:
                run.log(step=state.global_step, **numbers)
            shown = {k.rsplit("_", 1)[-1] if k.startswith("eval_") else k: v for k, v in numbers.items()
                     if k == "loss" or k.rsplit("_", 1)[-1] in METRICS}
            if shown:
                progress(f"step {state.global_step}/{state.max_steps}: "
                         + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))

    return RunLogger()


def mine_negatives(cfg: RetrieverTrainConfig, dataset: Any, model: Any, progress: Callable[[str], None]) -> tuple[Any, int]:
    """(anchor, positive, negative_1..n) rows; pairs without a negative that passes the margin are dropped
    by sentence-transformers, so fewer than half kept means the plain pairs train instead."""
    st = _st()
    hn = cfg.hard_negatives
    mined = st.mine_hard_negatives(
        dataset, model, anchor_column_name="anchor", positive_column_name="positive", num_negatives=hn.num_negatives,
        range_min=hn.range_min, range_max=hn.range_max, relative_margin=hn.relative_margin,
        sampling_strategy=hn.sampling, output_format="n-tuple" if hn.num_negatives > 1 else "triplet",
        batch_size=cfg.training.batch_size, use_faiss=False, verbose=False)
    if len(mined) < len(dataset) / 2:
        progress(f"hard negatives found for {len(mined)} of {len(dataset)} pairs only; training on the plain pairs "
                 "(lower hard_negatives.relative_margin or raise range_max)")
        return dataset, 0
    progress(f"hard negatives: {len(mined)} of {len(dataset)} pairs kept with {hn.num_negatives} negative(s) each")
    return mined, len(mined)


def build_trainer(cfg: RetrieverTrainConfig, pairs: list[dict[str, Any]], ev: EvalSet | None, run: RunDir | None = None,
                  progress: Callable[[str], None] = lambda m: None) -> tuple[Any, Any, int]:
    """(trainer, evaluator or None, pairs with hard negatives) for the contrastive method."""
    from dorag.retrieval.embedders import resolve_embedder

    st = _st()
    torch = require("torch", extra="models")
    datasets = require("datasets", extra="retriever")
    tcfg = cfg.training
    model = st.SentenceTransformer(resolve_embedder(cfg.embedder, progress=progress),
                                   device="cuda" if torch.cuda.is_available() else "cpu")
    model.max_seq_length = tcfg.max_seq_length
    dataset = datasets.Dataset.from_dict({"anchor": [p["query"] for p in pairs], "positive": [p["positive"] for p in pairs]})
    n_hard = 0
    if cfg.hard_negatives.enabled:
        dataset, n_hard = mine_negatives(cfg, dataset, model, progress)
    prec = _precision(tcfg.precision, torch)
    out = Path(cfg.resolved_output_dir())
    args = st.Args(
        output_dir=str(out / "checkpoints"), learning_rate=tcfg.learning_rate, lr_scheduler_type=tcfg.lr_scheduler,
        warmup_steps=tcfg.warmup_ratio,  # < 1: a ratio of the total steps (transformers 5)
        num_train_epochs=tcfg.num_train_epochs, max_steps=tcfg.max_steps, per_device_train_batch_size=tcfg.batch_size,
        per_device_eval_batch_size=tcfg.batch_size, weight_decay=tcfg.weight_decay,
        batch_sampler=st.BatchSamplers.NO_DUPLICATES,
        eval_strategy="steps" if ev else "no", eval_steps=tcfg.eval_steps, logging_steps=tcfg.logging_steps,
        save_strategy="steps", save_steps=tcfg.save_steps, save_total_limit=tcfg.save_total_limit,
        bf16=prec == "bf16", fp16=prec == "fp16", use_cpu=not torch.cuda.is_available(), seed=cfg.seed,
        data_seed=cfg.seed, report_to=[], dataloader_num_workers=0, disable_tqdm=True)
    ir = evaluator(ev, tcfg.batch_size) if ev else None
    trainer = st.Trainer(model=model, args=args, train_dataset=dataset, loss=st.MNRLoss(model, scale=tcfg.scale),
                         evaluator=ir, callbacks=[_callback(run, progress)])
    trainer.remove_callback(require("transformers", extra="models").PrinterCallback)  # it prints every log to stdout
    return trainer, ir, n_hard


# ---------------------------------------------------------------- methods

def load_training_data(cfg: RetrieverTrainConfig) -> tuple[list[dict[str, Any]], EvalSet | None]:
    from dorag.data.synth import read_pairs

    pairs = read_pairs(train_file(cfg), cfg.data.categories or None)
    if cfg.data.limit:
        pairs = pairs[: cfg.data.limit]
    where = eval_dir(cfg)
    if where is not None:
        return pairs, read_eval_dir(where, cfg.data.max_eval_queries, cfg.data.max_eval_corpus, cfg.seed)
    train, ev = eval_from_pairs(pairs, cfg.data.eval_fraction, cfg.seed)
    return train, cap_eval(ev, cfg.data.max_eval_queries, cfg.data.max_eval_corpus, cfg.seed) if ev else None


def train_contrastive(cfg: RetrieverTrainConfig, progress: Callable[[str], None] = lambda m: None) -> RetrieverResult:
    """MultipleNegativesRankingLoss over in-batch (and optionally mined hard) negatives."""
    from dorag.core.seed import seed_everything

    require("torch", extra="models")
    seed_everything(cfg.seed)
    pairs, ev = load_training_data(cfg)
    if len(pairs) < 2:
        raise DataError(f"{train_file(cfg)}: {len(pairs)} training pair(s); in-batch negatives need at least 2")
    out = Path(cfg.resolved_output_dir())
    resume_from = last_checkpoint(out) if cfg.resume else None
    if not cfg.resume and last_checkpoint(out):
        raise ConfigError(f"{out} already holds checkpoints; resume=true continues them, or choose another output_dir")
    run = RunDir.start(out, cfg, stage="train-retriever", seed=cfg.seed)
    trainer, ir, n_hard = build_trainer(cfg, pairs, ev, run, progress)
    before = None
    if ir is not None and resume_from is None:
        before = ir_metrics(ir(trainer.model))
        run.log(step=0, **{f"before_{k}": v for k, v in before.items()})
    elif resume_from is not None:
        prior = [m for m in run.metrics() if m.get("step") == 0 and "before_recall@1" in m]
        before = {k: prior[0][f"before_{k}"] for k in METRICS if f"before_{k}" in prior[0]} if prior else None
        progress(f"resuming from {resume_from.name}")
    sampler = type(trainer.get_train_dataloader().batch_sampler).__name__
    t0 = time.perf_counter()
    state = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - t0
    after = ir_metrics(ir(trainer.model)) if ir is not None else None
    model_dir = save_model(trainer.model, out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "method": cfg.method, "embedder": cfg.embedder, "model_dir": str(model_dir), "steps": trainer.state.global_step,
        "wall_s": round(wall, 3), "train_loss": state.training_loss, "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None, "before": before, "after": after,
        "n_train_pairs": len(pairs), "n_hard_negative_pairs": n_hard, "batch_sampler": sampler,
        "n_eval_queries": len(ev.queries) if ev else 0, "n_eval_docs": len(ev.corpus) if ev else 0,
        "resumed_from": resume_from.name if resume_from else None,
    }
    write_json(out / "train_summary.json", summary)
    run.log(**{k: v for k, v in summary.items() if isinstance(v, (int, float))},
            **{f"after_{k}": v for k, v in (after or {}).items()})
    run.finish()
    return RetrieverResult(model_dir, summary["steps"], wall, before, after, state.training_loss, summary)


def save_model(model: Any, out: Path) -> Path:
    """Write the sentence-transformers model to out/model via a temp dir and an atomic rename."""
    final = out / MODEL_DIR
    tmp = out / f".{MODEL_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def train_replug_lsr(cfg: RetrieverTrainConfig, progress: Callable[[str], None] = lambda m: None) -> RetrieverResult:
    """REPLUG LSR (Shi et al. 2023, sec. 4): the query encoder learns a frozen LM's preferences (training.replug)."""
    from dorag.training.replug import train_replug  # it builds on this module's evaluator and save_model

    return train_replug(cfg, progress=progress)


# A method takes the config and a progress callback and returns a RetrieverResult.
METHODS: dict[str, Callable[..., RetrieverResult]] = {"contrastive": train_contrastive, "replug-lsr": train_replug_lsr}


def train_retriever(cfg: RetrieverTrainConfig, progress: Callable[[str], None] = lambda m: None) -> RetrieverResult:
    try:
        method = METHODS[cfg.method]
    except KeyError:
        raise ConfigError(f"method: unknown retriever training method {cfg.method!r}; choose one of: "
                          + ", ".join(METHODS)) from None
    return method(cfg, progress=progress)
