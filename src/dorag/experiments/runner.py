"""Run an ablation plan: data, adapters, indexes, then the generate-and-score cells, resumably.

Every unit skips itself when its output is on disk, so the runner is also the resume logic. The result is
``<out>/ablation.json``: one record per cell (summary figures and where its per-sample results are),
the adapters' training figures and the indexes' retrieval figures, which `dorag report` reads.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dorag.core.config import to_dict
from dorag.core.errors import DataError
from dorag.core.io import exclusive, read_json, write_json
from dorag.core.runs import RunDir, git_sha
from dorag.experiments.ablate import GROUNDED_TASKS, AblateConfig, Plan, Unit, config_hash, plan
from dorag.tracking import flatten, open_tracker

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Bar = Callable[[str, int, str], Any]  # (description, total, unit) -> context manager yielding update(done, total)

ABLATION_FILE = "ablation.json"
METRICS_FILE = "metrics.json"  # {benchmark: {condition: {pass@1: ...}}}: for dorag gate and dvc metrics


def metrics_tree(result: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for cell in result["cells"]:
        tree.setdefault(cell["benchmark"], {})[cell["condition"]] = {k: round(v, 6) for k, v in cell["metrics"].items()}
    return tree


@contextlib.contextmanager
def _no_bar(desc: str, total: int, unit: str) -> Iterator[Callable[[int, int], None]]:
    yield lambda done, total_now: None


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Units done and left, and an ETA from the mean time of the units of each kind finished in this run."""

    def __init__(self, units: list[Unit], say: Say) -> None:
        self.total = len(units)
        self.left = {u.kind: sum(1 for v in units if v.kind == u.kind and not v.done()) for u in units}
        self.done = self.total - sum(self.left.values())
        self.spent: dict[str, list[float]] = {}
        self.say = say

    def eta_s(self) -> float | None:
        if any(n and not self.spent.get(kind) for kind, n in self.left.items()):
            return None  # a kind with work left has no timing yet
        return sum(n * sum(self.spent[k]) / len(self.spent[k]) for k, n in self.left.items() if n)

    def start(self, unit: Unit) -> float:
        eta = self.eta_s()
        tail = f", ETA {_fmt_s(eta)}" if eta is not None else ""
        self.say(f"[{self.done + 1}/{self.total}] {unit.kind} {unit.name} ({self.total - self.done - 1} left after it{tail})")
        return time.perf_counter()

    def finish(self, unit: Unit, t0: float) -> float:
        wall = time.perf_counter() - t0
        self.spent.setdefault(unit.kind, []).append(wall)
        self.left[unit.kind] -= 1
        self.done += 1
        return wall


def run_ablation(cfg: AblateConfig, say: Say = lambda m: None, bar: Bar = _no_bar,
                 only: set[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the grid of `cfg`; returns the content of ablation.json."""
    p = plan(cfg)
    out = Path(cfg.out)
    cells = [c for c in p.cells if only is None or c.condition in only]
    todo = [c for c in cells if not c.done()]
    _check_benchmarks(todo)  # a bad benchmark file or an unreachable model fails now, not after training
    if todo and cfg.model.backend != "openai":
        from dorag.models.loading import check_available

        check_available(cfg.model.name, cfg.model.cache_dir)
    with exclusive(out, "dorag ablate"):
        return _run(cfg, p, out, cells, say, bar)


def _run(cfg: AblateConfig, p: Plan, out: Path, cells: list[Unit], say: Say, bar: Bar) -> dict[str, Any]:
    adapters = [u for n, u in p.adapters.items() if any(c.adapter == n for c in cells)]
    datas: dict[str, Unit] = {}  # the data units of the adapters still to train, each once
    for u in adapters:
        if u.config is not None and not u.done() and u.name in p.adapter_data:
            datas.setdefault(str(p.adapter_data[u.name].dir), p.adapter_data[u.name])
    # an index that doc-grounded data retrieves from is built before the data
    data_index = cfg.data_index if any(d.config.task in GROUNDED_TASKS for d in datas.values()) else None
    indexes = [u for n, u in p.indexes.items() if any(c.index == n for c in cells) or n == data_index]
    units = [*indexes, *datas.values(), *adapters, *cells]
    progress = Progress(units, say)
    say(f"ablation {cfg.name}: {len(cells)} cells ({len({c.condition for c in cells})} conditions x "
        f"{len({c.benchmark for c in cells})} benchmarks), {progress.done} of {progress.total} units already done")
    run = RunDir.start(out, cfg, stage="ablate", seed=cfg.seed)
    tracker = open_tracker(cfg.tracking, cfg.name, out)
    tracker.log_params(flatten(to_dict(cfg)))
    tracker.set_tags({"git_sha": git_sha() or "unknown", "dorag.stage": "ablate"})
    status = "failed"
    try:
        for unit in indexes:
            if not unit.done():
                _build_index(unit, progress, say, bar)
        for data in datas.values():
            if not data.done():
                _prepare(data, progress, say)
        for unit in adapters:
            if not unit.done():
                _train(unit, progress, say)
        _run_cells(cfg, p, cells, progress, say, bar)
        result = collect(cfg, p, cells)
        result["stage_s"] = {kind: round(sum(v), 2) for kind, v in progress.spent.items()}  # this invocation only
        write_json(out / ABLATION_FILE, result)
        write_json(out / METRICS_FILE, metrics_tree(result))
        for cell in result["cells"]:
            tracker.log_metrics({f"{cell['benchmark']}/{cell['condition']}/{k}": v
                                 for k, v in cell["metrics"].items()})
        tracker.log_artifact(out / ABLATION_FILE)
        if cfg.report:
            from dorag.experiments.report import write_report

            rep = write_report([out], out / "report", seed=cfg.seed, title=cfg.name)
            for f in rep["files"]:
                tracker.log_artifact(f)
            result["report"] = rep["report"]
            result["synergy"] = rep["synergy"]
        status = "ok"
    finally:
        run.finish(status)
        tracker.finish(status)
    return result


def _prepare(unit: Unit, progress: Progress, say: Say) -> None:
    from dorag.experiments.prepare import prepare

    t0 = progress.start(unit)
    rep = prepare(unit.config, progress=say)
    write_json(unit.dir / "report.json", {"n_train": rep.n_train, "n_eval": rep.n_eval, "dropped": rep.dropped})
    say(f"  training data: {rep.n_train} train / {rep.n_eval} held out ({progress.finish(unit, t0):.0f} s)")


def _train(unit: Unit, progress: Progress, say: Say) -> None:
    import dataclasses

    from dorag.data.sft_data import load_examples, split
    from dorag.training.sft import last_checkpoint, train_adapter

    t0 = progress.start(unit)
    cfg = unit.config
    if last_checkpoint(unit.dir):
        cfg = dataclasses.replace(cfg, resume=True)
    examples = load_examples(cfg.data.train, task=cfg.name)
    if cfg.data.limit:
        examples = examples[: cfg.data.limit]
    if cfg.data.eval:
        train_set, eval_set = examples, load_examples(cfg.data.eval, task=cfg.name)
    else:
        train_set, eval_set = split(examples, cfg.data.eval_fraction, cfg.seed)
    res = train_adapter(cfg, train_set, eval_set[: cfg.data.max_eval_examples], progress=say)
    wall = progress.finish(unit, t0)
    say(f"  {unit.name} ({cfg.peft.method}): {res.steps} steps, {res.tokens_per_s:.0f} tokens/s, eval loss "
        f"{_loss(res.eval_loss_before)} -> {_loss(res.eval_loss_after)} ({wall:.0f} s)")


def _loss(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _build_index(unit: Unit, progress: Progress, say: Say, bar: Bar) -> None:
    from dorag.experiments.indexing import build

    t0 = progress.start(unit)
    with bar(f"index {unit.name}", 0, "doc") as update:
        figures = build(unit.config, on_progress=update, progress=say)
    say(f"  index {unit.name}: {figures['n_docs']} documents ({progress.finish(unit, t0):.0f} s)")


def _run_cells(cfg: AblateConfig, p: Plan, cells: list[Unit], progress: Progress, say: Say, bar: Bar) -> None:
    """Cells grouped by adapter, so each model loads once; a group whose cells are all done loads nothing."""
    from dorag.experiments.generate import pending, rag_contexts, run_generate, token_counter
    from dorag.models.loading import load_generator

    groups: dict[str | None, list[Unit]] = {}
    for cell in cells:
        groups.setdefault(cell.adapter, []).append(cell)
    for adapter, group in groups.items():
        todo = [c for c in group if not c.done()]
        if not todo:
            continue
        problem_sets = {c.name: _problems(c) for c in todo}
        generator = None
        if any(pending(c.config, problem_sets[c.name]) for c in todo):
            say(f"loading {cfg.model.name}" + (f" with adapter {adapter} folded in" if adapter else ""))
            generator = load_generator(todo[0].config.model, progress=say)
        for cell in todo:
            t0 = progress.start(cell)
            problems = problem_sets[cell.name]
            gcfg = cell.config
            run = RunDir.start(cell.dir, gcfg, stage="ablate-cell", seed=gcfg.seed)
            contexts = None
            if gcfg.rag.index:
                contexts = rag_contexts(gcfg, say)
                if generator is not None:
                    contexts.count_tokens = token_counter(generator)
            with bar(f"generate {cell.name}", len(problems), "task") as update:
                gen = run_generate(gcfg, generator, problems, on_progress=update, contexts=contexts)
            figures = _score(cell, problems, cfg, bar)
            figures.update(samples_generated=gen.n_generated, generated_tokens=gen.n_tokens, prompt_tokens=gen.n_prompt_tokens,
                           generate_s=round(gen.wall_s, 2), tokens_per_s=round(gen.tokens_per_s, 2))
            if contexts is not None:
                figures.update(retrieval_s=round(contexts.seconds, 2), leakage_flagged=contexts.leakage["n_flagged"])
            run.log(**figures)
            run.finish()
            wall = progress.finish(cell, t0)
            write_json(cell.dir / "cell.json", {"key": cell.key, "condition": cell.condition, "benchmark": cell.benchmark,
                                                "wall_s": round(wall, 2), **figures})
            say(f"  {cell.name}: pass@1 {figures.get('pass@1', float('nan')):.3f} on {figures['n_tasks']} tasks ({wall:.0f} s)")
        del generator
        gc.collect()


def _check_benchmarks(cells: list[Unit]) -> None:
    """Load each distinct benchmark the cells still need once, so that a missing or malformed file is an error
    before any training or indexing starts."""
    seen = set()
    for cell in cells:
        g = cell.config
        source = (g.benchmark, g.problems, g.limit, g.benchmark_path, g.sample)
        if source not in seen:
            seen.add(source)
            _problems(cell)


def _problems(cell: Unit) -> list[dict[str, Any]]:
    from dorag.evaluation.benchmarks import load_problems

    g = cell.config
    return load_problems(g.benchmark, g.problems, g.limit, g.benchmark_path, g.sample)


def _score(cell: Unit, problems: list[dict[str, Any]], cfg: AblateConfig, bar: Bar) -> dict[str, Any]:
    from dorag.evaluation.evaluate import evaluate_file

    samples = cell.config.resolved_out()
    with bar(f"score {cell.name}", len(problems), "sample") as update:
        summary, _, _ = evaluate_file(samples, problems, cfg.evaluate, progress=update)
    figures: dict[str, Any] = {"n_tasks": summary["n_tasks"], "n_samples": summary["n_samples"]}
    for k in cfg.evaluate.ks:
        entry = summary.get(f"pass@{k}")
        if isinstance(entry, dict):
            figures[f"pass@{k}"] = entry["value"]
    return figures


def collect(cfg: AblateConfig, p: Plan, cells: list[Unit]) -> dict[str, Any]:
    """ablation.json: every cell's figures and files, the adapters' training figures, retrieval figures."""
    from dorag.evaluation.evaluate import results_paths

    records = []
    for cell in cells:
        info = read_json(cell.dir / "cell.json")
        results, summary = results_paths(cell.config.resolved_out())
        records.append({"condition": cell.condition, "benchmark": cell.benchmark, "key": cell.key,
                        "dir": str(cell.dir), "samples": str(cell.config.resolved_out()), "results": str(results),
                        "summary": str(summary), "adapter": cell.adapter, "index": cell.index,
                        "top_k": cell.config.rag.top_k if cell.index else None, "wall_s": info.get("wall_s"),
                        "metrics": {k: v for k, v in info.items() if k.startswith("pass@")},
                        "figures": {k: v for k, v in info.items() if k not in ("key", "condition", "benchmark")}})
    adapters = {}
    for name, unit in p.adapters.items():
        summary_file = unit.dir / "train_summary.json"
        adapters[name] = {"dir": str(unit.dir), "key": unit.key,
                          **(read_json(summary_file) if summary_file.is_file() else {"given": True})}
    return {"name": cfg.name, "config_hash": config_hash(cfg), "conditions": list(cfg.conditions),
            "benchmarks": list(cfg.benchmarks), "cells": records, "adapters": adapters,
            "indexes": {n: {"dir": str(u.dir), "key": u.key} for n, u in p.indexes.items()},
            "retrieval": retrieval_figures(cfg, p), "git_sha": git_sha()}


def retrieval_figures(cfg: AblateConfig, p: Plan) -> dict[str, Any]:
    """Recall/nDCG of each benchmark's index where the benchmark has API relevance judgements (cached)."""
    from dorag.experiments.indexing import benchmark_qrels
    from dorag.retrieval.metrics import evaluate_run

    out: dict[str, Any] = {}
    for bname, b in cfg.benchmarks.items():
        if not b.index or b.index not in p.indexes or b.problems:
            continue
        unit = p.indexes[b.index]
        if not unit.done():
            continue  # not built: no cell of this run retrieves from it (only non-RAG conditions were asked for)
        # kept in the ablation's own directory: an index given by path may be another stage's output
        cache = Path(cfg.out) / "retrieval" / f"{b.index}-{unit.key}-{b.benchmark or bname}.json"
        if cache.is_file():
            out[bname] = read_json(cache)
            continue
        try:
            queries, qrels = benchmark_qrels(b.benchmark or bname)
        except DataError:
            continue  # no relevance judgements for this benchmark
        from dorag.retrieval.index import RetrievalIndex

        index = RetrievalIndex.load(unit.dir)
        queries = [q for q in queries if q["_id"] in qrels]
        hits = index.search([q["text"] for q in queries], 10)
        run = {q["_id"]: [(h.id, h.score) for h in row] for q, row in zip(queries, hits)}
        figures = {"index": b.index, "method": index.method, "n_queries": len(queries),
                   "metrics": evaluate_run(qrels, run, (1, 5, 10))}
        write_json(cache, figures)
        out[bname] = figures
    return out
