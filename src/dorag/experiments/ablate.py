"""`dorag ablate`: the conditions x benchmarks grid, each cell cached by the hash of its resolved config.

A plan is resolved and validated before any work: training data -> adapters -> indexes -> one
generate-and-score cell per (condition, benchmark). Every unit lives in a directory named after the hash
of what determines it (``adapters/lora-3f9c...``), so a re-run recomputes nothing that is done, a changed
setting gets a new directory, and a run killed at any point resumes: training from its last checkpoint,
generation from the last batch written, scoring from the last sample scored. A cell is done once its
``cell.json`` is written (atomically, last). Cells that share an adapter share one loaded model; the
adapter is folded into the weights for generation (LoRA and DoRA alike), so adapted cells decode at
base speed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import deep_merge, from_dict, option, to_dict
from dorag.core.errors import ConfigError
from dorag.core.io import read_json
from dorag.data.prompts import PromptConfig
from dorag.evaluation.evaluate import EvaluateConfig
from dorag.experiments.generate import GenerateConfig
from dorag.experiments.indexing import IndexBuildConfig
from dorag.experiments.prepare import PrepareConfig
from dorag.models.generator import GenerationParams
from dorag.models.loading import ModelConfig
from dorag.retrieval.assemble import RagConfig
from dorag.tracking import TrackingConfig
from dorag.training.config import TrainConfig

SIX = ("baseline", "lora_only", "dora_only", "rag_only", "lora_rag", "dora_rag")
GROUNDED_TASKS = ("doc-grounded", "mixture")


@dataclass
class AdapterSpec:
    """One adapter of the grid: trained here (cached by its config) or an existing PEFT directory."""

    method: Literal["lora", "dora", "qlora"] = option("lora", "lora, dora or qlora")
    path: str | None = option(None, "use this PEFT adapter directory instead of training one")
    set: dict[str, Any] = option(help="TrainConfig overrides for this adapter only, e.g. {peft.r: 8}",
                                 default_factory=dict)
    data: dict[str, Any] = option(help="training-data overrides for this adapter only (its own data unit), e.g. "
                                  "{task: code-legacy} for the pre-issue-19 recipe", default_factory=dict)


@dataclass
class IndexSpec:
    """One retrieval index: built here (cached by its config) or an existing index directory."""

    path: str | None = option(None, "use this index directory instead of building one")
    build: dict[str, Any] = option(help="IndexBuildConfig fields, e.g. {sources: [stdlib], index: {method: bm25}}",
                                   default_factory=dict)


@dataclass
class BenchmarkSpec:
    """One benchmark column of the grid."""

    benchmark: str | None = option(None, "registered benchmark (default: this entry's name)")
    problems: str | None = option(None, "a HumanEval-format JSONL instead of a registered benchmark")
    path: str | None = option(None, "local copy of the benchmark's official file (MBPP, DS-1000)")
    limit: int | None = option(None, "only N problems, chosen by sample")
    sample: Literal["first", "stratified"] = option(
        "first", "first: the first N problems; stratified: a seeded sample in proportion to each level (Unseen-API's "
        "single/compose/multi)")
    index: str | None = option(None, "the index (a name under `indexes`) that RAG conditions retrieve from")
    set: dict[str, Any] = option(help="GenerateConfig overrides for this benchmark", default_factory=dict)


@dataclass
class ConditionSpec:
    """One condition (row) of the grid: an adapter or none, retrieval or none."""

    adapter: str | None = option(None, "a name under `adapters` (none: the base model)")
    rag: bool = option(False, "retrieve from the benchmark's index")
    index: str | None = option(None, "retrieve from this index instead of the benchmark's")
    top_k: int | None = option(None, "documents retrieved (default rag.top_k)")
    benchmarks: tuple[str, ...] = option((), "run only on these benchmarks (default: every benchmark of the grid)")
    set: dict[str, Any] = option(help="GenerateConfig overrides for this condition", default_factory=dict)


def _runs_on(condition: ConditionSpec, benchmark: str) -> bool:
    return not condition.benchmarks or benchmark in condition.benchmarks


def _default_conditions() -> dict[str, ConditionSpec]:
    return {"baseline": ConditionSpec(), "lora_only": ConditionSpec(adapter="lora"),
            "dora_only": ConditionSpec(adapter="dora"), "rag_only": ConditionSpec(rag=True),
            "lora_rag": ConditionSpec(adapter="lora", rag=True), "dora_rag": ConditionSpec(adapter="dora", rag=True)}


@dataclass
class AblateConfig:
    """The grid: adapters, indexes, benchmarks and the conditions that combine them."""

    name: str = option("ablation", "the ablation's name (report title, tracker run name)")
    out: str = option("runs/ablation", "directory of the ablation: cells, adapters, indexes, report")
    seed: int = option(0, "seed of training, sampling and the bootstrap")
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationParams = field(default_factory=GenerationParams)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    rag: RagConfig = field(default_factory=RagConfig)
    data: PrepareConfig = field(default_factory=PrepareConfig)
    data_index: str | None = option(None, "data.task doc-grounded or mixture: the index (a name under `indexes`) whose "
                                    "documents and retriever the examples' documents come from -- the RAG conditions' own")
    train: dict[str, Any] = option(help="TrainConfig settings shared by every adapter, e.g. {training: {max_steps: 60}}",
                                   default_factory=dict)
    adapters: dict[str, AdapterSpec] = option(
        help="adapters by name", default_factory=lambda: {"lora": AdapterSpec("lora"), "dora": AdapterSpec("dora")})
    indexes: dict[str, IndexSpec] = option(help="indexes by name", default_factory=lambda: {
        "stdlib": IndexSpec(build={"sources": ["stdlib"]}), "unseen-api": IndexSpec(build={"sources": ["unseen-api"]})})
    benchmarks: dict[str, BenchmarkSpec] = option(help="benchmarks by name", default_factory=lambda: {
        "humaneval": BenchmarkSpec(index="stdlib"), "unseen-api": BenchmarkSpec(index="unseen-api")})
    conditions: dict[str, ConditionSpec] = option(help="conditions by name (a YAML list replaces the six defaults)",
                                                  default_factory=_default_conditions)
    evaluate: EvaluateConfig = field(default_factory=lambda: EvaluateConfig(ks=(1, 10)))
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    report: bool = option(True, "write the report when the grid is done")

    def check(self) -> list[str]:
        problems = []
        for cname, c in self.conditions.items():
            if c.adapter is not None and c.adapter not in self.adapters:
                problems.append(f"conditions.{cname}.adapter: {c.adapter!r} is not under adapters "
                                f"({', '.join(self.adapters) or 'none'})")
            if c.index is not None and c.index not in self.indexes:
                problems.append(f"conditions.{cname}.index: {c.index!r} is not under indexes ({', '.join(self.indexes)})")
            unknown = [b for b in c.benchmarks if b not in self.benchmarks]
            if unknown:
                problems.append(f"conditions.{cname}.benchmarks: {', '.join(unknown)} not under benchmarks "
                                f"({', '.join(self.benchmarks)})")
        for bname, b in self.benchmarks.items():
            if b.index is not None and b.index not in self.indexes:
                problems.append(f"benchmarks.{bname}.index: {b.index!r} is not under indexes ({', '.join(self.indexes)})")
            for cname, c in self.conditions.items():
                if c.rag and c.index is None and b.index is None and _runs_on(c, bname):
                    problems.append(f"benchmarks.{bname}.index: condition {cname} retrieves; name an index")
        if not self.conditions or not self.benchmarks:
            problems.append("conditions/benchmarks: the grid needs at least one of each")
        return problems


# Where things go, not what they are: left out of every hash, so a moved cache or output keeps its cells.
_PLACE_KEYS = frozenset({"cache_dir", "output_dir", "resume", "run_dir", "out"})


def _identity(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _identity(v) for k, v in data.items() if k not in _PLACE_KEYS}
    return data


def config_hash(obj: Any) -> str:
    """A short content hash of plain data or a config dataclass (key order and placement keys do not matter)."""
    return hashlib.sha256(json.dumps(_identity(to_dict(obj)), sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class Unit:
    kind: Literal["data", "adapter", "index", "cell"]
    name: str
    key: str
    dir: Path
    config: Any  # PrepareConfig, TrainConfig, IndexBuildConfig or GenerateConfig; None for a given path
    condition: str | None = None
    benchmark: str | None = None
    adapter: str | None = None
    index: str | None = None

    def done(self) -> bool:
        if self.kind == "data":
            return (self.dir / "report.json").is_file() or self.config is None
        if self.kind == "adapter":
            return self.config is None or (self.dir / "train_summary.json").is_file()
        if self.kind == "index":
            return self.config is None or (self.dir / "manifest.json").is_file()
        marker = self.dir / "cell.json"
        return marker.is_file() and read_json(marker).get("key") == self.key


@dataclass
class Plan:
    data: Unit | None  # the grid's training data (None: no adapter is trained here)
    adapters: dict[str, Unit]
    indexes: dict[str, Unit]
    cells: list[Unit]
    adapter_data: dict[str, Unit] = field(default_factory=dict)  # each trained adapter's data unit

    @property
    def datas(self) -> list[Unit]:
        """The distinct data units, the grid's own first."""
        seen: dict[str, Unit] = {}
        for unit in [*([self.data] if self.data else []), *self.adapter_data.values()]:
            seen.setdefault(str(unit.dir), unit)
        return list(seen.values())

    @property
    def units(self) -> list[Unit]:
        return [*self.datas, *self.adapters.values(), *self.indexes.values(), *self.cells]


def _file_hash(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"train.data.train: {path} does not exist; prepare it with dorag data prepare")
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def plan(cfg: AblateConfig) -> Plan:
    """Resolve every unit's config and directory; report every invalid setting at once."""
    out = Path(cfg.out)
    problems: list[str] = []

    def build(cls: type, data: dict[str, Any], where: str) -> Any:
        try:
            return from_dict(cls, data)
        except ConfigError as exc:
            problems.append(f"{where}: {str(exc).removeprefix('invalid config: ')}")
            return None

    used_adapters = {c.adapter for c in cfg.conditions.values() if c.adapter}
    used_indexes = {c.index or b.index for c in cfg.conditions.values() if c.rag
                    for bname, b in cfg.benchmarks.items() if _runs_on(c, bname)}
    given = (cfg.train.get("data") or {}).get("train")
    trained = sorted(a for a in used_adapters if cfg.adapters[a].path is None) if not given else []
    # each adapter's data: the grid's own, or the grid's with the adapter's `data` overrides (an old recipe)
    data_settings = {a: deep_merge(to_dict(cfg.data), cfg.adapters[a].data) for a in trained}
    for a, settings in data_settings.items():
        if settings.get("task") in GROUNDED_TASKS:
            if cfg.data_index is None or cfg.data_index not in cfg.indexes:
                problems.append(f"data_index: data.task {settings['task']} (adapter {a}) retrieves its documents from an "
                                f"index; name one under indexes ({', '.join(cfg.indexes)})")
            else:
                used_indexes.add(cfg.data_index)
    indexes: dict[str, Unit] = {}
    for name in sorted(i for i in used_indexes if i):
        spec = cfg.indexes[name]
        if spec.path is not None:
            indexes[name] = Unit("index", name, _given_key(spec.path, f"indexes.{name}.path", problems), Path(spec.path), None)
            continue
        weights = _local_embedder_hash((spec.build.get("index") or {}).get("embedder"))
        key = config_hash(spec.build if weights is None else {**spec.build, "embedder_files": weights})
        idir = out / "indexes" / f"{name}-{key}"
        indexes[name] = Unit("index", name, key, idir, build(IndexBuildConfig, {**spec.build, "out": str(idir)}, f"indexes.{name}"))

    def data_unit(settings: dict[str, Any], where: str) -> Unit | None:
        grounded = settings.get("task") in GROUNDED_TASKS and cfg.data_index in indexes
        if grounded:
            # the documents are assembled as the RAG cells assemble theirs: same index, query, budget and tokenizer
            settings = deep_merge(settings, {"query": cfg.rag.query, "tokenizer": cfg.model.name,
                                             "grounded": {"budget_tokens": cfg.rag.budget_tokens}})
        checked = build(PrepareConfig, settings, where)
        if checked is None:
            return None
        key = (config_hash({"data": settings, "index": indexes[cfg.data_index].key}) if grounded
               else config_hash(checked))
        ddir = out / "data" / f"{checked.task}-{key}"
        extra = {"index": str(indexes[cfg.data_index].dir)} if grounded else {}
        return Unit("data", checked.task, key, ddir, from_dict(PrepareConfig, {**settings, **extra,
                                                                               "out": str(ddir / "train.jsonl")}))

    data = data_unit(to_dict(cfg.data), "data") if trained else None
    adapter_data: dict[str, Unit] = {}
    for a, settings in data_settings.items():
        unit = data if not cfg.adapters[a].data else data_unit(settings, f"adapters.{a}.data")
        if unit is not None:
            adapter_data[a] = unit
    adapters: dict[str, Unit] = {}
    for name in sorted(used_adapters):
        spec = cfg.adapters[name]
        if spec.path is not None:
            adapters[name] = Unit("adapter", name, _given_key(spec.path, f"adapters.{name}.path", problems), Path(spec.path), None)
            continue
        train = deep_merge({"name": "code", "seed": cfg.seed, "model": {"name": cfg.model.name, "cache_dir": cfg.model.cache_dir}},
                           cfg.train)
        # problem-form examples are rendered with the prompt and RAG frame the cells use
        train = deep_merge(train, {"prompt": to_dict(cfg.prompt), "rag": {
            k: getattr(cfg.rag, k) for k in ("budget_tokens", "order", "min_tokens", "query")}})
        train = deep_merge(train, spec.set)
        train = deep_merge(train, {"peft": {"method": spec.method}})
        own = adapter_data.get(name)
        if own is not None:
            train = deep_merge(train, {"data": {"train": str(own.config.out), "eval": str(own.dir / "train.eval.jsonl")}})
            source = own.key
        else:
            source = _file_hash(given) if given and Path(given).is_file() else str(given)
        settings = deep_merge(train, {"data": {"train": None, "eval": None}})  # the data count by content
        key = config_hash({"train": settings, "source": source})
        adir = out / "adapters" / f"{name}-{key}"
        tcfg = build(TrainConfig, {**train, "output_dir": str(adir)}, f"adapters.{name}")
        adapters[name] = Unit("adapter", name, key, adir, tcfg)
    cells: list[Unit] = []
    for bname, b in cfg.benchmarks.items():
        for cname, c in cfg.conditions.items():
            if not _runs_on(c, bname):
                continue
            model = to_dict(cfg.model)
            a = adapters.get(c.adapter) if c.adapter else None
            if a is not None:
                model.update(adapters={c.adapter: str(a.dir / "adapter" if a.config is not None else a.dir)},
                             adapter=c.adapter, merge=True)
            iname = (c.index or b.index) if c.rag else None
            # Retrieval settings only count (and enter the hash) where there is retrieval.
            rag = to_dict(cfg.rag) if iname else to_dict(RagConfig())
            if iname:
                rag.update(index=str(indexes[iname].dir), top_k=c.top_k or cfg.rag.top_k)
            # sample only when not the default "first": the cells of earlier ablations keep their hashes
            gen = {"benchmark": None if b.problems else (b.benchmark or bname), "problems": b.problems,
                   "benchmark_path": b.path, "limit": b.limit, **({"sample": b.sample} if b.sample != "first" else {}),
                   "seed": cfg.seed, "model": model,
                   "generation": to_dict(cfg.generation), "prompt": to_dict(cfg.prompt), "rag": rag}
            gen = deep_merge(deep_merge(gen, b.set), c.set)
            # the adapter and index enter the hash by their own keys, not by their paths
            ident = {**gen, "model": {**gen["model"], "adapters": sorted(gen["model"].get("adapters", {}))},
                     "rag": {**gen["rag"], "index": None}}
            key = config_hash({"generate": ident, "adapter": a.key if a else None,
                               "index": indexes[iname].key if iname else None, "evaluate": to_dict(cfg.evaluate),
                               "problems": _file_hash_any(b.problems)})
            cdir = out / "cells" / f"{cname}--{bname}-{key}"
            gcfg = build(GenerateConfig, {**gen, "run_dir": str(cdir)}, f"cell {cname} x {bname}")
            cells.append(Unit("cell", f"{cname} x {bname}", key, cdir, gcfg, cname, bname, c.adapter, iname))
    if problems:
        raise ConfigError("invalid ablation config:\n  " + "\n  ".join(problems))
    return Plan(data, adapters, indexes, cells, adapter_data)


# Files in an adapter or index directory that are reports about it, not part of it (timings, checks).
_NOT_CONTENT = ("build.json", "leakage-*.json", "retrieval-*.json", "README.md")


def _dir_hash(root: Path) -> str:
    """sha256 over the relative names and bytes of the files under `root`, reports left out."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and not any(p.match(g) for g in _NOT_CONTENT)):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _given_key(path: str, where: str, problems: list[str]) -> str:
    """An adapter or index given by path enters the cells' hashes by its content, so that one retrained or
    rebuilt in place (a DVC stage's output) gets new cells, and one moved elsewhere keeps its cells."""
    root = Path(path).expanduser()
    if not root.is_dir():
        problems.append(f"{where}: {path} is not a directory")
        return "missing"
    return _dir_hash(root)


def _local_embedder_hash(embedder: Any) -> str | None:
    """For an embedder given as a local directory (a `dorag train-retriever` output), a hash of its files: a
    retrained model at the same path gets a new index, not the stale one. None for a packaged name or Hub id."""
    if not isinstance(embedder, str) or not Path(embedder).expanduser().is_dir():
        return None
    return _dir_hash(Path(embedder).expanduser())


def _file_hash_any(path: str | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"problems: {path} does not exist")
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]
