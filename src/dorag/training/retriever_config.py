"""Configs for retriever training (`dorag train-retriever`). One dataclass per concern."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dorag.core.config import at_least_one, option
from dorag.models.registry import DEFAULT_MODEL
from dorag.retrieval.embedders import DEFAULT_EMBEDDER


@dataclass
class RetrieverDataConfig:
    """Training pairs (`dorag data synth`) and the held-out queries + qrels scored during training."""

    train: str | None = option(None, "pairs JSONL (query, positive), or a `dorag data synth` directory (its train.jsonl)")
    eval_dir: str | None = option(None, "held-out BEIR files (corpus.jsonl, queries.jsonl, qrels/test.tsv); default: "
                                        "the train file's directory when it holds them, else eval_fraction of the pairs")
    eval_fraction: float = option(0.1, "share of pairs held out for evaluation when there is no eval_dir")
    categories: tuple[str, ...] = option((), "train on these categories only (empty: all)")
    limit: int | None = option(None, "use only the first N training pairs")
    max_eval_queries: int = option(500, "cap on evaluation queries (sampled with the seed)")
    max_eval_corpus: int = option(5000, "cap on evaluation documents; the judged ones are always kept")

    def check(self) -> list[str]:
        problems = []
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction: must be in [0, 1), got {self.eval_fraction}")
        if self.max_eval_queries < 1 or self.max_eval_corpus < 1:
            problems.append("max_eval_queries and max_eval_corpus: must be at least 1")
        return problems


@dataclass
class HardNegativesConfig:
    """Hard negatives mined with the base embedder (sentence_transformers.util.mine_hard_negatives)."""

    enabled: bool = option(False, "add mined hard negatives to each (query, positive) pair")
    num_negatives: int = option(1, "negatives per pair (NV-Retriever: 10 or fewer)")
    range_min: int = option(0, "skip the top-ranked candidates (they may be unlabelled positives)")
    range_max: int = option(50, "candidates considered per query")
    relative_margin: float | None = option(0.05, "keep a negative only when it scores this share below the positive "
                                                 "(NV-Retriever's TopK-PercPos); null: no margin")
    sampling: Literal["top", "random"] = option("top", "take the top candidates or sample among them")

    def check(self) -> list[str]:
        problems = []
        if self.num_negatives < 1:
            problems.append(f"num_negatives: must be at least 1, got {self.num_negatives}")
        if self.range_max <= self.range_min:
            problems.append(f"range_max: must exceed range_min ({self.range_min}), got {self.range_max}")
        return problems


@dataclass
class ContrastiveConfig:
    """Optimisation of the bi-encoder: SentenceTransformerTrainer's arguments for method contrastive; the
    step, schedule and checkpoint fields also drive replug-lsr (batch_size is then queries per step)."""

    learning_rate: float = option(2e-5, "peak learning rate (sentence-transformers' fine-tuning default)")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = option("linear", "schedule")
    warmup_ratio: float = option(0.1, "share of steps spent warming up")
    num_train_epochs: float = option(1.0, "epochs (ignored when max_steps > 0)")
    max_steps: int = option(-1, "stop after this many optimizer steps (> 0 overrides epochs)")
    batch_size: int = option(32, "pairs per step: each query's in-batch negatives are the other positives")
    max_seq_length: int = option(256, "tokens per text; longer ones are truncated")
    scale: float = option(20.0, "MultipleNegativesRankingLoss temperature inverse (cosine * scale)")
    weight_decay: float = option(0.01, "AdamW weight decay")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option("auto", "auto: bf16 on a bf16 GPU, fp16 on other GPUs, fp32 on CPU")
    logging_steps: int = option(10, "log loss every N steps")
    eval_steps: int = option(100, "score the held-out qrels every N steps")
    save_steps: int = option(100, "checkpoint every N steps (what a re-run resumes from)")
    save_total_limit: int = option(2, "checkpoints kept")

    def check(self) -> list[str]:
        problems = []
        problems += at_least_one(self, ("batch_size", "max_seq_length", "logging_steps", "eval_steps", "save_steps"))
        if self.learning_rate <= 0:
            problems.append(f"learning_rate: must be positive, got {self.learning_rate}")
        return problems


@dataclass
class ReplugConfig:
    """REPLUG LSR (Shi et al. 2023, sec. 4): the LM's preference among retrieved documents supervises the
    query encoder. Used by method replug-lsr only."""

    datastore: tuple[str, ...] = option((), "documents retrieved from: corpus JSONL files, index directories (their "
                                            "docs.jsonl) or corpus sources (stdlib, package:NAME, a directory); "
                                            "empty: the corpus.jsonl beside the pairs. The training queries' own "
                                            "documents are removed (sec. 4: queries and datastore are disjoint)")
    top_n: int = option(20, "documents retrieved per query, D' (the paper retrieves 20)")
    gamma: float = option(0.1, "retrieval temperature: P_R(d|x) = softmax over D' of cos(E(d), E(x)) / gamma (Eq. 3)")
    beta: float = option(1.0, "LM temperature: Q(d|x,y) = softmax over D' of log P_LM(y | d, x) / beta (Eq. 4)")
    refresh_steps: int = option(100, "re-embed the whole datastore with the current encoder every N steps "
                                     "(the paper's asynchronous index update); documents are stale in between")
    teacher: Literal["local", "openai"] = option("local", "local: a transformers model loaded here; openai: a served "
                                                          "model at teacher_base_url that returns prompt log-probs (vLLM)")
    teacher_model: str = option(DEFAULT_MODEL, "local: registered name (dorag models list), path or hub id; "
                                               "openai: the name the server knows")
    teacher_base_url: str | None = option(None, "openai teacher: server URL, e.g. http://localhost:8000/v1")
    teacher_api_key: str | None = option(None, "openai teacher: API key (the CLI reads OPENAI_API_KEY)")
    teacher_dtype: Literal["auto", "float32", "bfloat16", "float16"] = option("auto", "local teacher precision; auto: "
                                                                                     "float32 on CPU, bfloat16 on GPU")
    teacher_tokenizer: str | None = option(None, "openai teacher with prompt_style=chat: a local model whose chat "
                                                 "template renders the prompt (default: teacher_model)")
    prompt_style: Literal["auto", "chat", "completion"] = option(
        "auto", "the teacher's prompt, built as dorag builds RAG prompts: chat (template + response prefix) or "
                "completion (raw text); auto: chat for a local model with a chat template, else completion")
    doc_budget_tokens: int = option(256, "most prompt tokens the retrieved document takes (cut as for RAG)")
    max_target_tokens: int = option(128, "tokens of the gold continuation y scored; longer ones are cut")
    lm_batch_size: int = option(8, "(document, query, continuation) sequences per teacher forward pass")
    embed_batch_size: int = option(64, "texts per batch when embedding the datastore")
    ngram: int = option(8, "n-gram size of the query/datastore overlap test (as `dorag data synth`)")
    overlap_threshold: float = option(0.5, "n-gram containment at which a query counts as inside a document")
    max_query_in_datastore: float = option(0.1, "error when more than this share of training queries occurs in the "
                                                "datastore; below it those queries are dropped")
    timeout_s: float = option(120.0, "openai teacher: per-request timeout")
    concurrency: int = option(8, "openai teacher: requests in flight at once")

    def check(self) -> list[str]:
        problems = []
        problems += at_least_one(self, ("top_n", "refresh_steps", "doc_budget_tokens", "max_target_tokens", "lm_batch_size",
                     "embed_batch_size", "ngram", "concurrency"))
        if self.top_n < 2:
            problems.append("top_n: the distributions over D' need at least 2 documents")
        if self.gamma <= 0 or self.beta <= 0:
            problems.append(f"gamma and beta: temperatures must be positive, got {self.gamma} and {self.beta}")
        if self.teacher == "openai" and not self.teacher_base_url:
            problems.append("teacher_base_url: required when teacher=openai (e.g. http://localhost:8000/v1)")
        if not 0 <= self.max_query_in_datastore <= 1 or not 0 < self.overlap_threshold <= 1:
            problems.append("max_query_in_datastore and overlap_threshold: must be fractions in [0, 1]")
        return problems


@dataclass
class RetrieverTrainConfig:
    """`dorag train-retriever`: fine-tune an embedder on (query, positive) pairs."""

    method: str = option("contrastive", "training method (dorag.training.retriever.METHODS): contrastive, replug-lsr")
    embedder: str = option(DEFAULT_EMBEDDER, "base embedder: all-minilm-l6-v2, all-mpnet-base-v2, a local "
                                             "sentence-transformers directory or a Hub id")
    output_dir: str | None = option(None, "run directory (default runs/retriever-<method>); the model goes to <dir>/model")
    resume: bool = option(True, "continue from the last checkpoint in output_dir when there is one")
    seed: int = option(0, "seed")
    data: RetrieverDataConfig = field(default_factory=RetrieverDataConfig)
    training: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    hard_negatives: HardNegativesConfig = field(default_factory=HardNegativesConfig)
    replug: ReplugConfig = field(default_factory=ReplugConfig)

    def check(self) -> list[str]:
        from dorag.training.retriever import METHODS  # the registry decides which methods exist

        problems = [] if self.data.train else ["data.train: give the training pairs (see `dorag data synth`)"]
        if self.method not in METHODS:
            problems.append(f"method: invalid value {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.method == "contrastive" and self.training.batch_size < 2:
            problems.append("training.batch_size: in-batch negatives need at least 2 pairs per batch")
        return problems

    def resolved_output_dir(self) -> str:
        return self.output_dir or f"runs/retriever-{self.method}"
