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
    benchmark_path: Optional[str] = typer.Option(None, help="local official file for MBPP / DS-1000"),
    limit: Optional[int] = typer.Option(None, help="only N problems (default: the run's own limit, from the config.yaml "
                                        "beside the samples)"),
    k: Optional[str] = typer.Option(None, "--k", help="comma-separated k values, e.g. 1,10,100"),
    workers: Optional[int] = typer.Option(None, help="parallel sandbox workers (0 = one per core)"),
    timeout_s: Optional[float] = typer.Option(None, "--timeout-s", help="per-program wall-clock limit"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML with evaluate settings"),
    text_metrics: Optional[str] = typer.Option(
        None, help="also score text against each problem's `reference` (else canonical_solution): bleu,codebleu,exact_match"),
    judge: bool = typer.Option(False, "--judge", help="LLM-as-judge 1-5 score (needs --judge-url)"),
    judge_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL for the judge"),
    judge_model: Optional[str] = typer.Option(None, help="model name at the judge endpoint"),
    no_exec: bool = typer.Option(False, "--no-exec", help="skip execution (text metrics or judge only)"),
) -> None:
    """Run each sample against its tests; write <samples>_results.jsonl and <samples>_summary.json."""
    from pathlib import Path

    from dorag.core.errors import DataError
    from dorag.core.io import write_json
    from dorag.evaluation.benchmarks import load_problems
    from dorag.evaluation.evaluate import EvaluateConfig, evaluate_file, load_samples, results_paths

    cfg = build_config(EvaluateConfig, config, {"ks": k, "sandbox.workers": workers, "sandbox.timeout_s": timeout_s},
                       overrides or [])
    if not Path(samples).is_file():
        raise DataError(f"{samples}: samples file not found")
    run = _run_settings(samples)
    sample = "first"
    if run and benchmark is None and problems is None and benchmark_path is None:
        # the samples were written by `dorag generate` into a run directory: score the tasks it generated for,
        # not the whole benchmark (the tasks a --limit left out would otherwise count as failures)
        benchmark, problems, benchmark_path = run.get("benchmark"), run.get("problems"), run.get("benchmark_path")
        limit = run.get("limit") if limit is None else limit
        sample = run.get("sample") or "first"
        echo(f"scoring {problems or benchmark}" + (f", {limit} tasks ({sample})" if limit else "")
             + f", as the run's {Path(samples).parent / 'config.yaml'} says")
    probs = load_problems(benchmark or (None if problems else "humaneval"), problems, limit, benchmark_path, sample)
    rows = load_samples(samples, probs)
    results_path, summary_path = results_paths(samples)
    summary: dict = {}
    if not no_exec:
        with progress_bar("evaluate", total=len(rows), unit="sample") as update:
            summary, _, _ = evaluate_file(samples, probs, cfg, progress=update, rows=rows)
    if text_metrics:
        summary["text_metrics"] = _text_metrics(rows, probs, [m.strip() for m in text_metrics.split(",") if m.strip()])
    if judge:
        summary["judge"] = _judge(rows, probs, judge_url, judge_model)
    write_json(summary_path, summary)
    print(format_summary(summary))
    if summary.get("missing_tasks"):
        echo(f"{len(summary['missing_tasks'])} task(s) had no sample and count as failed: "
             + ", ".join(summary["missing_tasks"][:10]) + (" ..." if len(summary["missing_tasks"]) > 10 else ""))
    echo(f"results: {results_path}\nsummary: {summary_path}")


def _run_settings(samples: str) -> dict | None:
    """The benchmark settings of the `dorag generate` run that wrote `samples` (its config.yaml sits beside the
    samples, and names them as its output), or None for a samples file from anywhere else."""
    from pathlib import Path

    import yaml

    path = Path(samples)
    cfg_path = path.parent / "config.yaml"
    if not cfg_path.is_file():
        return None
    try:
        data = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not ({"benchmark", "problems"} & set(data)):
        return None
    out = Path(data.get("out") or path.parent / "samples.jsonl")
    if out.resolve() != path.resolve():
        return None
    return {k: data.get(k) for k in ("benchmark", "problems", "benchmark_path", "limit", "sample")}


def _first_per_task(rows: list) -> dict[str, str]:
    """The first sample's completion of each task (text metrics and the judge score one answer per task)."""
    first: dict[str, str] = {}
    for r in rows:
        first.setdefault(r["task_id"], r["completion"])
    return first


def _text_metrics(rows: list, probs: list, metrics: list[str]) -> dict:
    """First sample per task against the problem's reference text."""
    from dorag.evaluation.text_metrics import score_text

    refs = {p["task_id"]: p.get("reference", p.get("canonical_solution", "")) for p in probs}
    first = _first_per_task(rows)
    tasks = sorted(first)
    return score_text([first[t] for t in tasks], [refs[t] for t in tasks], metrics)


def _judge(rows: list, probs: list, url: Optional[str], model: Optional[str]) -> dict:
    if not url:
        echo("LLM-as-judge skipped: no endpoint configured (pass --judge-url and --judge-model)")
        return {"skipped": "no endpoint configured"}
    import os

    from dorag.evaluation.judge import judge as run_judge, mean_score
    from dorag.models.openai_backend import OpenAIGenerator

    client = OpenAIGenerator(url, model or "default", api_key=os.environ.get("OPENAI_API_KEY"))
    prompts = {p["task_id"]: p["prompt"] for p in probs}
    first = _first_per_task(rows)
    tasks = sorted(first)
    verdicts = run_judge([prompts[t] for t in tasks], [first[t] for t in tasks], client.chat)
    return {"mean_score": mean_score(verdicts), "n": len(verdicts),
            "unparsed": sum(v.score is None for v in verdicts)}


def format_summary(summary: dict) -> str:
    lines = [f"{'metric':16} {'value':>8}  95% CI", "-" * 42]
    for key, val in summary.items():
        if key.startswith("pass@"):
            lines.append(f"{key:16} {val['value']:8.4f}  [{val['ci95_low']:.4f}, {val['ci95_high']:.4f}]")
    if isinstance(summary.get("execution_accuracy"), dict):  # text-to-SQL: EX is pass@1 of the first sample
        val = summary["execution_accuracy"]
        lines.append(f"{'EX':16} {val['value']:8.4f}  [{val['ci95_low']:.4f}, {val['ci95_high']:.4f}]")
    if isinstance(summary.get("exact_match"), float):
        lines.append(f"{'EM':16} {summary['exact_match']:8.4f}")
    for groups in summary.get("by_meta", {}).values():  # Unseen-API's levels, DS-1000's libraries
        for value, vals in groups.items() if len(groups) > 1 else ():
            for key, val in vals.items():
                lines.append(f"{value + ' ' + key:16} {val['value']:8.4f}  [{val['ci95_low']:.4f}, {val['ci95_high']:.4f}]")
    for key, val in summary.get("text_metrics", {}).items():
        lines.append(f"{key:16} {val:8.4f}")
    if summary.get("judge", {}).get("mean_score") is not None:
        lines.append(f"{'judge (1-5)':16} {summary['judge']['mean_score']:8.4f}")
    if "status_counts" in summary:
        counts = ", ".join(f"{s}={n}" for s, n in sorted(summary["status_counts"].items()))
        lines.append(f"tasks={summary['n_tasks']} samples={summary['n_samples']} {counts}")
    return "\n".join(lines)
