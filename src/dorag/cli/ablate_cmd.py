"""`dorag ablate` and `dorag report`."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import echo, env_defaults, nest, progress_bar


def ablate(
    config_arg: Optional[str] = typer.Argument(None, metavar="[CONFIG]",
                                               help="ablation YAML (configs/ablate-*.yaml); the same as -c"),
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. benchmarks.humaneval.limit=20"),
    config_opt: Optional[str] = typer.Option(None, "--config", "-c",
                                             help="ablation YAML (configs/ablate-*.yaml); default: the six conditions"),
    profile: Optional[str] = typer.Option(None, help="a built-in profile instead of a file: quickstart or full"),
    out: Optional[str] = typer.Option(None, help="ablation directory (cells, adapters, indexes, report)"),
    conditions: Optional[str] = typer.Option(None, help="run only these conditions (comma-separated)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan (units, hashes, done or not) and exit"),
) -> None:
    """Run the conditions x benchmarks grid; cells are cached by config hash, a killed run resumes."""
    from dorag.core.config import deep_merge, from_dict, load_yaml, parse_overrides
    from dorag.experiments.ablate import AblateConfig, plan
    from dorag.experiments.profiles import resolve_ablate_data
    from dorag.experiments.runner import run_ablation

    flags = {**{k: v for k, v in env_defaults().items() if k == "model.cache_dir"}, "out": out}
    config = config_arg
    if config and "=" in config:  # `dorag ablate key=value ...` without a file
        overrides, config = [config, *(overrides or [])], None
    if config_opt:
        if config:
            raise typer.BadParameter(f"give the config once: -c {config_opt} or the positional {config}, not both")
        config = config_opt
    if config and profile:
        raise typer.BadParameter("give a config file or --profile, not both (a YAML may say `profile: NAME`)")
    data = resolve_ablate_data(load_yaml(config) if config else {}, profile)
    data = deep_merge(data, nest({k: v for k, v in flags.items() if v is not None}))
    cfg = from_dict(AblateConfig, deep_merge(data, parse_overrides(overrides or [])))
    only = {c.strip() for c in conditions.split(",") if c.strip()} if conditions else None
    if only:
        unknown = only - set(cfg.conditions)
        if unknown:
            raise typer.BadParameter(f"unknown condition(s) {', '.join(sorted(unknown))}; known: {', '.join(cfg.conditions)}")
    if dry_run:
        for unit in plan(cfg).units:
            print(f"{'done' if unit.done() else 'todo'}  {unit.kind:7} {unit.name:32} {unit.key}  {unit.dir}")
        return
    result = run_ablation(cfg, say=echo, bar=progress_bar, only=only)
    for line in result.get("synergy", []):
        print(line)
    echo(f"ablation: {cfg.out}/ablation.json; metrics: {cfg.out}/metrics.json")
    if result.get("report"):
        print(result["report"])


def report(
    runs: List[str] = typer.Argument(..., help="ablation directories (written by dorag ablate)"),
    out: Optional[str] = typer.Option(None, help="report directory (default: <first run>/report)"),
    bootstrap: int = typer.Option(10_000, help="bootstrap resamples for the paired tests"),
    seed: int = typer.Option(0, help="bootstrap seed"),
) -> None:
    """Tables (CSV, Markdown, LaTeX), plots (PNG, SVG) and paired significance tests with Holm correction."""
    from pathlib import Path

    from dorag.experiments.report import write_report

    target = out or str(Path(runs[0]) / "report")
    result = write_report(runs, target, n_boot=bootstrap, seed=seed)
    for line in result["synergy"]:
        print(line)
    echo(f"{len(result['files'])} files in {target}")
    print(result["report"])


def publish(
    ablation: str = typer.Argument(..., help="ablation directory (after dorag gate passed)"),
    out: str = typer.Option(..., "--out", help="where the PEFT directories go (one per adapter)"),
    repo_prefix: Optional[str] = typer.Option(None, help="hub repo prefix, e.g. me/qwen-coder: pushes me/qwen-coder-dora"),
    public: bool = typer.Option(False, "--public", help="create public hub repos (default private)"),
    adapter: Optional[List[str]] = typer.Option(None, "--adapter", help="another adapter to publish: NAME=DIR (repeatable)"),
) -> None:
    """Export the ablation's adapters as PEFT directories with model cards; push to the Hub only with HF_TOKEN."""
    import os

    from dorag.experiments.publish import publish as run_publish

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    extra = {}
    for item in adapter or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"--adapter {item!r}: expected NAME=DIR")
        extra[name] = path
    for rec in run_publish(ablation, out, repo_prefix, token, private=not public, extra=extra):
        print(rec["path"])
        echo(f"{rec['adapter']}: pushed to {rec['pushed']}" if rec["pushed"] else
             f"{rec['adapter']}: exported, not pushed: {rec['why_not']}")
