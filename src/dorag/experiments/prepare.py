"""`dorag data prepare`: build SFT training data from source code or instruction sets, decontaminated.

Decontamination checks every benchmark that can be loaded here (HumanEval always; MBPP and DS-1000 when
their files are given) and reports how many examples each one removed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.errors import DataError
from dorag.core.io import write_json, write_jsonl
from dorag.data.ast_extract import extract_from_tree, extract_stdlib
from dorag.data.decontam import Decontaminator, benchmark_texts
from dorag.data.docgrounded import DocGroundedConfig
from dorag.data.sft_data import example_text, load_examples, pairs_from_functions

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    """Which examples to build, and how to hold some out."""

    task: Literal["code", "code-legacy", "docstring", "doc-grounded", "mixture"] = option(
        "code", "code: docstring->code, rendered with the evaluation prompt; code-legacy: the same pairs in the "
        "pre-issue-19 instruction format; docstring: code->docstring; doc-grounded: RAFT examples with oracle and "
        "distractor documents; mixture: examples without documents (no_docs_sources) mixed with doc-grounded ones")
    sources: tuple[str, ...] = option(("stdlib",), "stdlib, package:NAME, a source directory, or a JSONL/JSON/parquet file")
    out: str = option("data/train.jsonl", "training JSONL; the held-out split goes to <out stem>.eval.jsonl")
    eval_fraction: float = option(0.05, "share held out (by a hash of the example id, so it is stable)")
    limit: int | None = option(None, "keep at most N training examples (after filtering), chosen by hash")
    decontaminate: tuple[str, ...] = option(("humaneval",), "benchmarks whose prompts/solutions are removed; "
                                            "offline: every registered benchmark that loads here")
    benchmark_paths: dict[str, str] = option(help="local files for benchmarks that need one, e.g. {mbpp: sanitized-mbpp.json}",
                                             default_factory=dict)
    ngram: int = option(10, "n-gram size for the overlap test")
    grounded: DocGroundedConfig = field(default_factory=DocGroundedConfig)
    index: str | None = option(None, "doc-grounded: the index (directory) that retrieves the distractors -- the one "
                               "the RAG conditions use; default: a BM25 index of the sources, built in memory")
    query: Literal["prompt", "docstring"] = option("prompt", "doc-grounded: what is sent to the retriever (rag.query)")
    tokenizer: str | None = option(None, "doc-grounded: the model whose tokenizer counts document tokens for the budget")
    mix: dict[str, float] = option(help="mixture: shares of examples without documents, with the oracle, and with "
                                   "distractors only", default_factory=lambda: {"no-docs": 0.4, "oracle": 0.48,
                                                                                "distractors": 0.12})
    grounded_tasks: tuple[str, ...] = option((), "doc-grounded: problem-form JSONL files of tested tasks (selfgen: the "
                                             "shipped self-generated set) whose solutions call the library; they become "
                                             "doc-grounded examples checked by execution (renamed ones through a wrapper)")
    no_docs_sources: tuple[str, ...] = option(("selfgen",), "mixture: where the examples without documents come "
                                              "from: selfgen (the shipped self-generated set), stdlib, package:NAME or a "
                                              "directory (docstring->code pairs), or problem-form JSONL files")

    def check(self) -> list[str]:
        problems = []
        from dorag.evaluation.benchmarks import BENCHMARKS

        unknown_b = [b for b in self.decontaminate if b != "offline" and b.lower() not in BENCHMARKS]
        if unknown_b:
            problems.append(f"decontaminate: unknown benchmark(s) {', '.join(unknown_b)}; choose from offline (every "
                            f"benchmark that loads here), {', '.join(sorted(BENCHMARKS))}")
        if self.task == "mixture":
            unknown = sorted(set(self.mix) - {"no-docs", "oracle", "distractors"})
            if unknown or not self.mix or any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
                problems.append("mix: give non-negative shares of no-docs, oracle and distractors"
                                + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        if not 0 <= self.eval_fraction < 1:
            problems.append(f"eval_fraction: must be in [0, 1), got {self.eval_fraction}")
        if not self.sources:
            problems.append("sources: give at least one source")
        return problems


@dataclass
class PrepareReport:
    train: Path
    eval: Path
    n_train: int
    n_eval: int
    dropped: dict[str, int] = field(default_factory=dict)


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {name!r} is not installed (source package:{name})")
    return Path(list(spec.submodule_search_locations)[0])


def collect(cfg: PrepareConfig) -> tuple[list[dict[str, Any]], dict[str, int]]:
    examples: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for src in cfg.sources:
        if src in ("stdlib", "site-packages") or src.startswith("package:") or Path(src).is_dir():
            if src == "stdlib":
                records = extract_stdlib()
            elif src.startswith("package:"):
                records = extract_from_tree(_package_dir(src.split(":", 1)[1]), exclude=("tests", "test"))
            else:
                records = extract_from_tree(src, exclude=("tests", "test"))
            pairs, why = pairs_from_functions(records, cfg.task)
            for k, v in why.items():
                dropped[k] = dropped.get(k, 0) + v
            examples += pairs
        elif Path(src).is_file():
            examples += load_examples(src, task=cfg.task)
        elif src.startswith("mbpp"):
            examples += mbpp_train_examples(src.partition(":")[2] or None)
        elif src.startswith("hub:"):
            examples += hub_examples(src[4:], cfg.task)
        else:
            raise DataError(f"source {src!r} is not stdlib, package:NAME, mbpp[:FILE], hub:ID, a directory or a file")
    if not examples:
        raise DataError("the sources produced no training examples (empty dataset)")
    return examples, dropped


def mbpp_train_examples(path: str | None) -> list[dict[str, Any]]:
    """MBPP's train split (task ids 601-974) in problem form: the benchmark prompt (description + tests) -> code."""
    from dorag.data.sft_data import make_problem_example
    from dorag.evaluation.loaders import load_mbpp

    out = []
    for p in load_mbpp(path, variant="full", split="train"):
        problem = {k: p[k] for k in ("task_id", "prompt", "entry_point")}
        out.append(make_problem_example(f"mbpp:{p['task_id']}", problem, p["canonical_solution"].strip() + "\n",
                                        source="mbpp-train"))
    return out


def hub_examples(dataset_id: str, task: str) -> list[dict[str, Any]]:
    """An instruction set from the Hub (e.g. sahil2801/CodeAlpaca-20k, ise-uiuc/Magicoder-Evol-Instruct-110K)."""
    from dorag.core.require import require
    from dorag.data.sft_data import convert_record

    datasets = require("datasets", extra="data")
    try:
        rows = datasets.load_dataset(dataset_id, split="train")
    except Exception as exc:  # noqa: BLE001 - network and hub errors vary by version
        raise DataError(f"could not load {dataset_id} from the Hugging Face Hub ({type(exc).__name__}; offline?); "
                        "download it once and pass the JSONL/parquet file as a source") from exc
    return [convert_record(dict(r), f"{dataset_id}:{i + 1}", task, i + 1) for i, r in enumerate(rows)]


@dataclass
class Benchmarks:
    """Every benchmark that training data must avoid, loaded once: its n-gram index and entry-point signatures.

    `load(("offline", ...))` expands 'offline' to every registered benchmark whose data ships with an installed
    package. One of those that does not load here (Spider without its data packages) is recorded in `skipped`;
    a benchmark named explicitly must load.
    """

    grams: dict[str, Decontaminator] = field(default_factory=dict)
    signatures: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, names: Sequence[str], paths: dict[str, str] | None = None, n: int = 10) -> Benchmarks:
        from dorag.core.errors import DoragError
        from dorag.data.selfgen import signature_key
        from dorag.evaluation.benchmarks import BENCHMARKS, load_problems

        paths = paths or {}
        out = cls()
        wanted = [b.name for b in BENCHMARKS.values() if b.offline] if "offline" in names else []
        wanted += [b.lower() for b in names if b != "offline" and b.lower() not in wanted]
        for name in wanted:
            try:
                problems = load_problems(name, benchmark_path=paths.get(name))
            except (DoragError, ImportError, OSError) as exc:  # includes a missing optional data package
                if name in names:
                    raise
                out.skipped[name] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                continue
            out.grams[name] = Decontaminator(n=n).add(benchmark_texts(problems))
            out.signatures[name] = {key for p in problems if p.get("entry_point")
                                    and (key := signature_key(p.get("prompt", ""), p["entry_point"]))}
        return out

    @property
    def names(self) -> list[str]:
        return list(self.grams)

    def leak(self, text: str, signature: tuple[str, str] | None = None) -> str | None:
        """Why `text` may not be used ('contaminated:humaneval', 'signature:humaneval'), or None."""
        for name, index in self.grams.items():
            if signature is not None and signature in self.signatures.get(name, ()):
                return f"signature:{name}"
            if index.contaminated(text):
                return f"contaminated:{name}"
        return None

    def drop(self, texts: Sequence[str]) -> tuple[list[bool], dict[str, int]]:
        """Which of `texts` to keep, and how many each benchmark removed (the first benchmark that overlaps
        a text counts it)."""
        keep, counts = [], {f"contaminated:{name}": 0 for name in self.grams}
        for text in texts:
            hit = next((name for name, index in self.grams.items() if index.contaminated(text)), None)
            keep.append(hit is None)
            if hit is not None:
                counts[f"contaminated:{hit}"] += 1
        return keep, counts


def decontaminate(examples: Sequence[dict[str, Any]], benchmarks: Benchmarks) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Drop examples whose text shares an n-gram with any benchmark; counts per benchmark."""
    keep, counts = benchmarks.drop([example_text(ex) for ex in examples])
    return [ex for ex, k in zip(examples, keep) if k], counts


def _bucket(ex_id: str) -> float:
    return int(hashlib.sha1(ex_id.encode()).hexdigest()[:8], 16) / 2**32


def prepare(cfg: PrepareConfig, progress: Callable[[str], None] = lambda m: None) -> PrepareReport:
    extra: dict[str, Any] = {}
    if cfg.task in ("doc-grounded", "mixture"):
        from dorag.experiments.grounded_data import grounded_and_mixture

        train, held, dropped, extra = grounded_and_mixture(cfg, progress)
    else:
        examples, dropped = collect(cfg)
        benchmarks = Benchmarks.load(cfg.decontaminate, cfg.benchmark_paths, cfg.ngram)
        examples, contaminated = decontaminate(examples, benchmarks)
        extra["decontaminated_against"] = benchmarks.names
        if benchmarks.skipped:
            extra["decontamination_skipped"] = benchmarks.skipped
        dropped.update(contaminated)
        held = [ex for ex in examples if _bucket(ex["id"]) < cfg.eval_fraction]
        train = [ex for ex in examples if _bucket(ex["id"]) >= cfg.eval_fraction]
    if cfg.limit is not None:
        train = sorted(train, key=lambda ex: _bucket("limit:" + ex["id"]))[: cfg.limit]
    out = Path(cfg.out)
    eval_path = out.with_name(out.name.removesuffix(".jsonl") + ".eval.jsonl")
    write_jsonl(out, train)
    write_jsonl(eval_path, held)
    report = PrepareReport(out, eval_path, len(train), len(held), dropped)
    write_json(out.with_name(out.name.removesuffix(".jsonl") + ".report.json"),
               {"train": str(out), "eval": str(eval_path), "n_train": len(train), "n_eval": len(held),
                "dropped": dropped, "task": cfg.task, "sources": list(cfg.sources), **extra})
    return report
