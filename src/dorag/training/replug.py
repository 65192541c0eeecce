"""REPLUG LSR: train the retriever's query encoder on a frozen LM's preferences (Shi et al. 2023, sec. 4).

For each training query x with gold continuation y (training.replug_data says which text is which):

1. retrieve the top-n documents D' from the datastore with the current query encoder;
2. retrieval likelihood (Eq. 3): P_R(d|x) = softmax over D' of cos(E(d), E(x)) / gamma;
3. LM likelihood (Eq. 4): Q(d|x,y) = softmax over D' of log P_LM(y | d o x) / beta, one teacher forward
   pass per (d, x, y), no gradient. The paper typesets P_LM in Eq. 4; its log is what makes Q non-degenerate
   for a long y (a 100-token probability underflows to 0 for every d), and is what implementations use;
4. loss (Eq. 5): the mean over the batch of KL(P_R || Q), the retriever's distribution first as in the
   paper, back-propagated into the query side only: document embeddings are constants taken from a matrix
   that is re-embedded with the current encoder every `refresh_steps` steps (sec. 4, "asynchronous update
   of the datastore index"), so between refreshes retrieval uses stale documents, as in the paper.

The encoder is one sentence-transformers model (queries and documents share it), saved like the
contrastive method's: ``<output_dir>/model`` and ``train_summary.json``. Checkpoints
(``checkpoints/checkpoint-N``: the model, optimizer and scheduler state, ``trainer_state.json`` written
last) are renamed into place whole, so a kill leaves the last complete one, and a re-run continues from it.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dorag.core.errors import ConfigError, DataError
from dorag.core.io import read_json, write_json
from dorag.core.require import require
from dorag.core.runs import RunDir
from dorag.training.replug_data import Example, Render, disjoint, load_datastore, prompt_renderer, to_example
from dorag.training.retriever_config import RetrieverTrainConfig

STATE = "trainer_state.json"


# ---------------------------------------------------------------- the objective

def retrieval_scores(queries: Any, docs: Any) -> Any:
    """cos(E(d), E(x)) of each query with its own documents; the documents are constants (no gradient).

    queries: (B, H) unit vectors; docs: (B, n, H) unit vectors -> (B, n)."""
    torch = require("torch", extra="models")
    return torch.einsum("bh,bnh->bn", queries, docs.detach())  # (B, n)


def lsr_loss(scores: Any, lm_logprobs: Any, gamma: float, beta: float) -> Any:
    """Eq. 5: mean over queries of KL(P_R(.|x) || Q(.|x, y)) over the retrieved documents.

    scores: (B, n) retrieval similarities; lm_logprobs: (B, n) log P_LM(y | d, x), a constant."""
    torch = require("torch", extra="models")
    log_p = torch.log_softmax(scores / gamma, dim=-1)  # (B, n) Eq. 3
    log_q = torch.log_softmax(lm_logprobs.detach().to(scores.dtype) / beta, dim=-1)  # (B, n) Eq. 4
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()  # Eq. 5


# ---------------------------------------------------------------- the teacher

def build_teacher(cfg: RetrieverTrainConfig, progress: Callable[[str], None]) -> tuple[Callable, Render, dict[str, Any]]:
    """(scorer, prompt renderer, description) for the configured teacher."""
    rc = cfg.replug
    if rc.teacher == "openai":
        from dorag.models.scoring import OpenAIScorer

        scorer = OpenAIScorer(rc.teacher_base_url or "", rc.teacher_model, api_key=rc.teacher_api_key,
                              timeout_s=rc.timeout_s, concurrency=rc.concurrency)
        mode = scorer.probe()  # once, up front: a server without prompt log-probs is refused here
        progress(f"teacher: {rc.teacher_model} at {rc.teacher_base_url} ({mode})")
        tok = _tokenizer(rc.teacher_tokenizer or rc.teacher_model) if rc.prompt_style == "chat" else None
        count = (lambda t: len(tok(t, add_special_tokens=False)["input_ids"])) if tok is not None else _approx_tokens
        style = "chat" if tok is not None else "completion"
        info = {"kind": "openai", "model": rc.teacher_model, "base_url": rc.teacher_base_url, "protocol": mode}
    else:
        from dorag.models.loading import ModelConfig, load_transformers
        from dorag.models.scoring import TransformersScorer

        model, tok = load_transformers(ModelConfig(name=rc.teacher_model, dtype=rc.teacher_dtype), progress)
        model.requires_grad_(False)  # frozen: the teacher only scores
        scorer = TransformersScorer(model, tok, batch_size=rc.lm_batch_size, max_target_tokens=rc.max_target_tokens)
        has_template = bool(getattr(tok, "chat_template", None))
        style = rc.prompt_style if rc.prompt_style != "auto" else ("chat" if has_template else "completion")
        if style == "chat" and not has_template:
            raise ConfigError(f"replug.prompt_style: {rc.teacher_model} has no chat template; use completion")
        count = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])  # noqa: E731
        info = {"kind": "local", "model": rc.teacher_model, "device": str(model.device), "dtype": str(model.dtype)}
    render_chat = None
    if style == "chat":
        from dorag.models.hf import render_prompt

        render_chat = lambda prompt: render_prompt(tok, prompt)  # noqa: E731
    info["prompt_style"] = style
    return scorer, prompt_renderer(style, count, rc.doc_budget_tokens, render_chat), info


def _approx_tokens(text: str) -> int:
    return len(text) // 4 + 1  # no local tokenizer: about four characters per token of code


def _tokenizer(name: str) -> Any:
    from dorag.core.errors import ModelError
    from dorag.models import registry

    transformers = require("transformers", extra="models")
    try:
        location, _ = registry.resolve(name, auto_pull=False)
        return transformers.AutoTokenizer.from_pretrained(location)
    except (ModelError, OSError) as exc:
        raise ConfigError(f"replug.teacher_tokenizer: no local tokenizer for {name!r} to render chat prompts "
                          f"({str(exc).splitlines()[0]}); pull it (dorag models pull) or use prompt_style=completion") from None


# ---------------------------------------------------------------- the training loop

class LSRTrainer:
    """The encoder, its optimizer, the datastore's embedding matrix and one LSR step at a time."""

    def __init__(self, cfg: RetrieverTrainConfig, model: Any, docs: Sequence[dict[str, Any]], scorer: Callable,
                 render: Render, total_steps: int) -> None:
        torch = require("torch", extra="models")
        transformers = require("transformers", extra="models")
        self.cfg, self.model, self.docs, self.scorer, self.render = cfg, model, list(docs), scorer, render
        tc = cfg.training
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.learning_rate,
                                           weight_decay=tc.weight_decay)
        self.scheduler = transformers.get_scheduler(tc.lr_scheduler, self.optimizer, num_training_steps=total_steps,
                                                    num_warmup_steps=int(tc.warmup_ratio * total_steps))
        self.step = 0
        self.doc_emb: Any = None  # (N, H) unit vectors from the encoder as it was at the last refresh
        self.refreshes: list[int] = []  # the steps at which the datastore was re-embedded
        self.refresh_s: list[float] = []  # this run's refresh durations

    @property
    def device(self) -> Any:
        return self.model.device

    def refresh(self) -> None:
        """Re-embed the whole datastore with the current encoder (the asynchronous index update)."""
        torch = require("torch", extra="models")
        t0 = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            emb = self.model.encode([d["text"] for d in self.docs], batch_size=self.cfg.replug.embed_batch_size,
                                    convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
        self.doc_emb = emb.detach().float().to(self.device)  # (N, H)
        self.refreshes.append(self.step)
        self.refresh_s.append(round(time.perf_counter() - t0, 3))

    def embed_queries(self, texts: Sequence[str]) -> Any:
        """Query embeddings with gradient (train mode). -> (B, H) unit vectors."""
        torch = require("torch", extra="models")
        self.model.train()
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in prep(list(texts)).items()}
        return torch.nn.functional.normalize(self.model(features)["sentence_embedding"].float(), dim=-1)  # (B, H)

    def retrieve(self, texts: Sequence[str]) -> Any:
        """Top-n document indices for each query, by the current query encoder against the stale documents."""
        torch = require("torch", extra="models")
        self.model.eval()
        with torch.no_grad():
            q = self.model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True,
                                  show_progress_bar=False).float().to(self.device)  # (B, H)
        return (q @ self.doc_emb.T).topk(self.cfg.replug.top_n, dim=-1).indices  # (B, n)

    def train_step(self, batch: Sequence[Example]) -> dict[str, float]:
        """One optimizer step of Eq. 5 on a batch; refreshes the datastore first when one is due."""
        torch = require("torch", extra="models")
        t0 = time.perf_counter()
        if self.doc_emb is None or (self.step > 0 and self.step % self.cfg.replug.refresh_steps == 0
                                    and self.refreshes[-1] != self.step):
            self.refresh()
        t_refresh = time.perf_counter() - t0
        top = self.retrieve([ex.query for ex in batch])  # (B, n)
        n = top.shape[1]
        t1 = time.perf_counter()
        lm = self.scorer([(self.render(ex, self.docs[j]), ex.target) for ex, row in zip(batch, top.tolist()) for j in row])
        t_lm = time.perf_counter() - t1
        lm_logprobs = torch.tensor(lm, dtype=torch.float32, device=self.device).view(len(batch), n)  # (B, n)
        scores = retrieval_scores(self.embed_queries([ex.query for ex in batch]), self.doc_emb[top])  # (B, n)
        loss = lsr_loss(scores, lm_logprobs, self.cfg.replug.gamma, self.cfg.replug.beta)
        if not torch.isfinite(loss):
            raise DataError(f"step {self.step + 1}: the LSR loss is {loss.item()}; check the teacher's log-probs")
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        agree = (scores.argmax(-1) == lm_logprobs.argmax(-1)).float().mean().item()
        return {"loss": loss.item(), "top1_agreement": agree, "lr": self.scheduler.get_last_lr()[0],
                "step_s": time.perf_counter() - t0, "lm_s": t_lm, "refresh_s": t_refresh}

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, out: Path, state: dict[str, Any], keep: int) -> Path:
        """checkpoints/checkpoint-<step>, built in a temp dir and renamed in whole; the oldest beyond `keep` go."""
        torch = require("torch", extra="models")
        root = out / "checkpoints"
        final = root / f"checkpoint-{self.step}"
        tmp = root / f".checkpoint-{self.step}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(str(tmp))
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        write_json(tmp / STATE, {**state, "step": self.step, "refreshes": self.refreshes})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        done = sorted((p for p in root.glob("checkpoint-*") if (p / STATE).is_file()), key=lambda p: int(p.name.split("-")[-1]))
        for old in done[: max(0, len(done) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, ckpt: Path) -> dict[str, Any]:
        torch = require("torch", extra="models")
        state = read_json(ckpt / STATE)
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device))
        self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", map_location=self.device))
        self.step = int(state["step"])
        self.refreshes = list(state.get("refreshes", []))
        return state


def _redacted(cfg: RetrieverTrainConfig) -> RetrieverTrainConfig:
    """The config as written to the run directory: an API key is not."""
    import dataclasses

    if not cfg.replug.teacher_api_key:
        return cfg
    return dataclasses.replace(cfg, replug=dataclasses.replace(cfg.replug, teacher_api_key="***"))


def identity(cfg: RetrieverTrainConfig) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that continues it (not lengths, paths or speed)."""
    rc, tc = cfg.replug, cfg.training
    return {"embedder": cfg.embedder, "train": str(cfg.data.train), "categories": list(cfg.data.categories),
            "limit": cfg.data.limit, "seed": cfg.seed, "datastore": list(rc.datastore), "top_n": rc.top_n,
            "gamma": rc.gamma, "beta": rc.beta, "refresh_steps": rc.refresh_steps, "teacher": rc.teacher,
            "teacher_model": rc.teacher_model, "prompt_style": rc.prompt_style, "doc_budget_tokens": rc.doc_budget_tokens,
            "max_target_tokens": rc.max_target_tokens, "learning_rate": tc.learning_rate, "batch_size": tc.batch_size,
            "max_seq_length": tc.max_seq_length}


def batch_order(n: int, batch_size: int, total_steps: int, seed: int) -> list[list[int]]:
    """Each step's example indices: the examples shuffled anew every epoch (seeded), cut into batches."""
    flat: list[int] = []
    epoch = 0
    while len(flat) < total_steps * batch_size:
        perm = list(range(n))
        random.Random(seed * 1_000_003 + epoch).shuffle(perm)
        flat += perm
        epoch += 1
    return [flat[s * batch_size : (s + 1) * batch_size] for s in range(total_steps)]


def train_replug(cfg: RetrieverTrainConfig, progress: Callable[[str], None] = lambda m: None) -> Any:
    """`dorag train-retriever --method replug-lsr`."""
    from dorag.core.seed import seed_everything
    from dorag.retrieval.embedders import resolve_embedder
    from dorag.training.retriever import (METRICS, RetrieverResult, evaluator, ir_metrics, load_training_data,
                                          save_model, train_file)
    from dorag.training.sft import last_checkpoint

    torch = require("torch", extra="models")
    seed_everything(cfg.seed)
    rc, tc = cfg.replug, cfg.training
    out = Path(cfg.resolved_output_dir())
    resume_from = last_checkpoint(out) if cfg.resume else None
    if not cfg.resume and last_checkpoint(out):
        raise ConfigError(f"{out} already holds checkpoints; resume=true continues them, or choose another output_dir")
    if resume_from is not None:
        saved = read_json(resume_from / STATE).get("identity")
        differ = sorted(k for k, v in identity(cfg).items() if saved is not None and json.dumps(saved.get(k)) != json.dumps(v))
        if differ:
            raise ConfigError(f"{resume_from} was trained with other settings ({', '.join(differ)}); use those, "
                              "or resume=false with another output_dir")
    pairs, ev = load_training_data(cfg)
    docs, where = load_datastore(rc.datastore, train_file(cfg))
    pairs, docs, dropped = disjoint(pairs, docs, rc, progress)
    examples = [to_example(p) for p in pairs]
    total = tc.max_steps if tc.max_steps > 0 else max(1, math.ceil(tc.num_train_epochs * math.ceil(len(examples) / tc.batch_size)))
    scorer, render, teacher = build_teacher(cfg, progress)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    st = require("sentence_transformers", extra="retriever", package="sentence-transformers")
    model = st.SentenceTransformer(str(resume_from) if resume_from else resolve_embedder(cfg.embedder, progress=progress),
                                   device=device)
    model.max_seq_length = tc.max_seq_length
    trainer = LSRTrainer(cfg, model, docs, scorer, render, total)
    run = RunDir.start(out, _redacted(cfg), stage="train-retriever", seed=cfg.seed)
    ir = evaluator(ev, tc.batch_size) if ev else None
    state: dict[str, Any] = {"identity": identity(cfg), "losses": [], "before": None}
    if resume_from is not None:
        state = {**state, **trainer.load_checkpoint(resume_from)}
        progress(f"resuming from {resume_from.name}")
    elif ir is not None:
        state["before"] = ir_metrics(ir(model))
        run.log(step=0, **{f"before_{k}": v for k, v in state["before"].items()})
    progress(f"replug-lsr: {len(examples)} queries, datastore of {len(docs)} documents, top_n {rc.top_n}, "
             f"{total} steps, refresh every {rc.refresh_steps}")
    order = batch_order(len(examples), tc.batch_size, total, cfg.seed)
    timings: list[dict[str, float]] = []
    t_start = time.perf_counter()
    if trainer.step < total:
        trainer.refresh()  # a fresh start, or a resumed one: the saved matrix is not kept, re-embed once
    while trainer.step < total:
        rec = trainer.train_step([examples[i] for i in order[trainer.step]])
        timings.append(rec)
        state["losses"].append(round(rec["loss"], 6))
        run.log(step=trainer.step, **{k: round(v, 6) for k, v in rec.items()}, refreshes=len(trainer.refreshes))
        if trainer.step % tc.logging_steps == 0 or trainer.step == total:
            progress(f"step {trainer.step}/{total}: loss {rec['loss']:.4f}, top-1 agreement {rec['top1_agreement']:.2f}, "
                     f"{rec['step_s']:.2f} s/step (teacher {rec['lm_s']:.2f} s)")
        if ir is not None and trainer.step % tc.eval_steps == 0 and trainer.step < total:
            mid = ir_metrics(ir(model))
            run.log(step=trainer.step, **{f"eval_{k}": v for k, v in mid.items()})
            progress(f"step {trainer.step}/{total}: " + ", ".join(f"{k} {v:.4f}" for k, v in mid.items()))
        if trainer.step % tc.save_steps == 0 or trainer.step == total:
            trainer.save_checkpoint(out, state, tc.save_total_limit)
    wall = time.perf_counter() - t_start
    after = ir_metrics(ir(model)) if ir is not None else None
    model_dir = save_model(model, out)
    losses = state["losses"]
    mean = lambda key: round(sum(t[key] for t in timings) / len(timings), 4) if timings else None  # noqa: E731
    summary = {
        "method": cfg.method, "embedder": cfg.embedder, "model_dir": str(model_dir), "steps": trainer.step,
        "wall_s": round(wall, 3), "s_per_step": mean("step_s"), "teacher_s_per_step": mean("lm_s"),
        "train_loss": round(sum(losses) / len(losses), 6) if losses else None,
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "loss_curve": losses, "before": state["before"], "after": after,
        "refreshes": trainer.refreshes, "refresh_s": trainer.refresh_s, "teacher": teacher, "datastore": where,
        "n_datastore": len(docs), "n_train_pairs": len(examples), **dropped, "top_n": rc.top_n, "gamma": rc.gamma, "beta": rc.beta,
        "batch_size": tc.batch_size, "n_eval_queries": len(ev.queries) if ev else 0,
        "n_eval_docs": len(ev.corpus) if ev else 0, "resumed_from": resume_from.name if resume_from else None,
    }
    write_json(out / "train_summary.json", summary)
    run.log(**{k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            **{f"after_{k}": v for k, v in (after or {}).items()})
    run.finish()
    before = state["before"]
    return RetrieverResult(model_dir, trainer.step, wall, before and {k: before[k] for k in METRICS if k in before},
                           after, summary["train_loss"], summary)
