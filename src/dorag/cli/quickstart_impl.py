"""The quickstart: the whole main job on the embedded default, offline, resumable cell by cell.

Provision the model, then `dorag ablate --profile quickstart` (or `full`): training data, LoRA and DoRA
code adapters, the stdlib and Unseen-API indexes, six conditions on a HumanEval subset and Unseen-API,
and the report with its synergy line. Every unit is cached, so a re-run takes seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from dorag.cli.common import echo, progress_bar

STAGE_NAMES = {"data": "training data", "adapter": "adapter training", "index": "indexes", "cell": "generate + score"}


def run_quickstart(full: bool, out: str | None, model: str, limit: int | None = None, mbpp: str | None = None,
                   cache_dir: str | None = None, overrides: Sequence[str] = ()) -> None:
    from dorag.core.config import deep_merge, from_dict, parse_overrides
    from dorag.experiments.ablate import AblateConfig
    from dorag.experiments.profiles import load_profile
    from dorag.experiments.runner import run_ablation
    from dorag.models import registry

    data = load_profile("full" if full else "quickstart")
    extra: dict = {"model": {"name": model}}
    if out:
        extra["out"] = out
    if cache_dir:
        extra["model"]["cache_dir"] = cache_dir
    if limit is not None:
        extra["benchmarks"] = {"humaneval": {"limit": limit}}
    if mbpp:
        extra.setdefault("benchmarks", {})["mbpp"] = {"path": mbpp, "index": "stdlib"}
    cfg = from_dict(AblateConfig, deep_merge(deep_merge(data, extra), parse_overrides(overrides)))
    if full and not mbpp:
        echo("MBPP: not measurable offline without a local copy; pass --mbpp sanitized-mbpp.json to include it")

    t0 = time.perf_counter()
    echo(f"[model] {cfg.model.name}")
    if cfg.model.name.lower() in registry.MODELS:
        registry.pull(cfg.model.name, cfg.model.cache_dir, progress=echo)
    else:
        registry.resolve(cfg.model.name, cfg.model.cache_dir)
    pull_s = time.perf_counter() - t0
    result = run_ablation(cfg, say=echo, bar=progress_bar)
    stages = {"model": pull_s, **{STAGE_NAMES.get(k, k): v for k, v in result["stage_s"].items()}}
    lines = ["", "| stage | seconds (this run) |", "|---|---|", *[f"| {k} | {v:.1f} |" for k, v in stages.items()],
             f"| total | {time.perf_counter() - t0:.1f} |", ""]
    report = Path(result["report"])
    print(report.with_name("results.md").read_text())
    for line in result.get("synergy", []):
        print(line)
    print("\n".join(lines))
    echo(f"report: {report}")
