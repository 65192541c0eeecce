"""The quickstart pipeline: the main job on the embedded default, offline, resumable stage by stage."""

from __future__ import annotations

import time
from pathlib import Path

from dorag.cli.common import echo, progress_bar


def run_quickstart(full: bool, out: str, model: str = "qwen2.5-coder-0.5b-instruct", limit: int | None = None) -> None:
    """Provision the default model, generate HumanEval samples, score them in the sandbox, report."""
    from dorag.core.config import from_dict
    from dorag.core.runs import RunDir
    from dorag.core.seed import seed_everything
    from dorag.evaluation.benchmarks import load_problems
    from dorag.evaluation.evaluate import EvaluateConfig, evaluate_file
    from dorag.experiments.generate import GenerateConfig, generate_stage, pending
    from dorag.models import registry

    root = Path(out)
    if limit is None and not full:
        limit = 20
    cfg = from_dict(GenerateConfig, {"benchmark": "humaneval", "limit": limit, "model": {"name": model},
                                     "run_dir": str(root / "humaneval-baseline"), "generation": {"max_new_tokens": 512}})
    run = RunDir.start(root, cfg, stage="quickstart", seed=cfg.seed)
    seed_everything(cfg.seed)
    times: dict[str, float] = {}

    t0 = time.perf_counter()
    echo(f"[1/3] model: {cfg.model.name}")
    if cfg.model.name.lower() in registry.MODELS:
        path = registry.pull(cfg.model.name, cfg.model.cache_dir, progress=echo)
    else:
        path = registry.resolve(cfg.model.name, cfg.model.cache_dir)[0]
    times["pull_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    problems = load_problems("humaneval", limit=limit)
    echo(f"[2/3] generate: HumanEval, {len(problems)} tasks ({len(problems) - len(pending(cfg, problems))} already done)")
    with progress_bar("generate", total=len(problems), unit="task") as update:
        result = generate_stage(cfg, problems, on_progress=update, progress=echo)
    times["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    echo("[3/3] evaluate in the sandbox")
    with progress_bar("evaluate", total=len(problems), unit="sample") as update:
        summary, _, _ = evaluate_file(cfg.resolved_out(), problems, EvaluateConfig(ks=(1,)), progress=update)
    times["evaluate_s"] = time.perf_counter() - t0

    p1 = summary["pass@1"]
    report = root / "report.md"
    lines = [
        "# dorag quickstart",
        "",
        f"Model: `{cfg.model.name}` ({path}); benchmark: HumanEval, {len(problems)} tasks, greedy.",
        "",
        "| condition | pass@1 | 95% CI | tasks |",
        "|---|---|---|---|",
        f"| baseline | {p1['value']:.3f} | [{p1['ci95_low']:.3f}, {p1['ci95_high']:.3f}] | {len(problems)} |",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {k[:-2]} | {v:.1f} |" for k, v in times.items()],
        "",
        f"Generation: {result.n_tokens} new tokens at {result.tokens_per_s:.1f} tokens/s this run.",
    ]
    report.write_text("\n".join(lines) + "\n")
    run.log(**{k: round(v, 2) for k, v in times.items()}, pass_at_1=p1["value"])
    run.finish()
    print("\n".join(lines))
    echo(f"report: {report}")
