"""`dorag evaluate`: score a samples JSONL in the sandbox."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, progress_bar


def evaluate(
    samples: str = typer.Argument(..., help="samples JSONL ({task_id, completion} per line)"),
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. sandbox.memory_mb=4096"),
    benchmark: Optional[str] = typer.Option(None, help="registered benchmark (default humaneval)"),
    problems: Optional[str] = typer.Option(None, help="HumanEval-format problems JSONL instead of a benchmark"),
    k: Optional[str] = typer.Option(None, "--k", help="comma-separated k values, e.g. 1,10,100"),
    workers: Optional[int] = typer.Option(None, help="parallel sandbox workers (0 = one per core)"),
    timeout_s: Optional[float] = typer.Option(None, "--timeout-s", help="per-program wall-clock limit"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML with evaluate settings"),
) -> None:
    """Run each sample against its tests; write <samples>_results.jsonl and <samples>_summary.json."""
    from pathlib import Path

    from dorag.core.errors import DataError
    from dorag.core.io import write_json
    from dorag.evaluation.benchmarks import load_problems
    from dorag.evaluation.evaluate import EvaluateConfig, evaluate_samples, load_samples, results_paths, summarize
    from dorag.evaluation.sandbox import Sandbox

    cfg = build_config(EvaluateConfig, config, {"ks": k, "sandbox.workers": workers, "sandbox.timeout_s": timeout_s},
                       overrides or [])
    if not Path(samples).is_file():
        raise DataError(f"{samples}: samples file not found")
    probs = load_problems(benchmark or (None if problems else "humaneval"), problems)
    rows = load_samples(samples, probs)
    results_path, summary_path = results_paths(samples)
    with progress_bar("evaluate", total=len(rows), unit="sample") as update:
        results = evaluate_samples(rows, probs, results_path, Sandbox(cfg.sandbox), progress=update)
    summary = summarize(results, probs, cfg.ks, n_boot=cfg.bootstrap, seed=cfg.seed)
    write_json(summary_path, summary)
    print(format_summary(summary))
    if summary["missing_tasks"]:
        echo(f"{len(summary['missing_tasks'])} task(s) had no sample and count as failed: "
             + ", ".join(summary["missing_tasks"][:10]) + (" ..." if len(summary["missing_tasks"]) > 10 else ""))
    echo(f"results: {results_path}\nsummary: {summary_path}")


def format_summary(summary: dict) -> str:
    lines = [f"{'metric':10} {'value':>8}  95% CI", "-" * 36]
    for key, val in summary.items():
        if key.startswith("pass@"):
            lines.append(f"{key:10} {val['value']:8.4f}  [{val['ci95_low']:.4f}, {val['ci95_high']:.4f}]")
    counts = ", ".join(f"{s}={n}" for s, n in sorted(summary["status_counts"].items()))
    lines.append(f"tasks={summary['n_tasks']} samples={summary['n_samples']} {counts}")
    return "\n".join(lines)
