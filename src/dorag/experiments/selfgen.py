"""`dorag data selfgen`: execution-verified problems written by the model itself, as SFT data.

Per batch of seed functions, four steps, each appended to its own stage file in the output directory so a
killed run resumes where it stopped (a seed already in a stage file is not redone):

    problems.jsonl   a. the writer turns each seed into a HumanEval-style stub; parsed, deduplicated and
                        decontaminated at once (no compute is spent on a leaked problem)
    solutions.jsonl  b. one greedy + n sampled answers through the benchmark's own prompt and post-processing
    tests.jsonl      c. asserts written from the stub alone, plus the docstring's >>> examples
    verified.jsonl   d. every (solution, test) pair in the sandbox; CodeT dual agreement keeps one solution

After each batch the outputs are rewritten from the stage files: train.jsonl (records for SFT),
heldout.problems.jsonl (HumanEval-format problems for tuning) and report.json (counts, drops, seconds).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import at_least_one, option
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import JsonlAppender, exclusive, iter_jsonl, repair_jsonl_tail, write_json, write_jsonl
from dorag.data import selfgen as sg
from dorag.data.ast_extract import FunctionRecord
from dorag.experiments.prepare import Benchmarks
from dorag.data.postprocess import to_completion
from dorag.data.prompts import PromptConfig, build_prompt, stops_for
from dorag.evaluation.benchmarks import BENCHMARKS
from dorag.evaluation.evaluate import build_program
from dorag.evaluation.sandbox import Sandbox, SandboxConfig, warn_weaker
from dorag.models.generator import GenerationParams, Generator
from dorag.models.loading import ModelConfig
from dorag.models.registry import DEFAULT_MODEL

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
STAGES = ("problems", "solutions", "tests", "verified")
TEST_STOPS: tuple[str, ...] = ("\n```", "\ncheck(", "\nif __name__", "\ndef ", "\nprint(")


@dataclass
class SelfGenConfig:
    """`dorag data selfgen`: which seeds, which writer, how many samples and tests, where to write."""

    sources: tuple[str, ...] = option(("stdlib",), "seed code: stdlib, package:NAME, a source directory or .py file")
    n_seeds: int = option(40, "seed functions to use (small pure functions first, in a seeded order)")
    seed: int = option(0, "seed of the seed order, the sampling and the held-out split")
    writer: str = option(DEFAULT_MODEL, "the model that writes problems, solutions and tests: a registered name, a "
                         "local path or hub id, or the served name at llm_base_url")
    llm_base_url: str | None = option(None, "an OpenAI-compatible server for the writer, e.g. http://localhost:8000/v1")
    dtype: str = option("bfloat16", "local writer's dtype: auto, float32, bfloat16, float16")
    device: str = option("auto", "local writer's device: auto, cpu, cuda, ...")
    fewshot: int = option(1, f"worked seed -> stub examples before the seed (0 to {len(sg.FEWSHOT)})")
    seed_view: str = option("summary", "what the writer sees of a seed: summary (signature and docstring summary) "
                            "or code (its source, as in OSS-Instruct)")
    require_examples: bool = option(True, "a problem's docstring must show at least one >>> example")
    problem_temperature: float = option(0.0, "temperature of problem writing (0: greedy)")
    n_samples: int = option(4, "sampled solutions per problem, besides the greedy one")
    temperature: float = option(0.8, "temperature of the sampled solutions")
    top_p: float = option(0.95, "nucleus mass of the sampled solutions")
    n_tests: int = option(6, "asserts asked for per problem")
    max_tests: int = option(10, "asserts kept per problem at most (the model's, then the docstring's)")
    docstring_tests: bool = option(True, "also use the stub's own >>> examples as tests")
    consistent_examples: bool = option(True, "the kept solution must pass every >>> example of the docstring "
                                       "whose result is a literal (else the prompt teaches a wrong example)")
    expected: Literal["written", "executed"] = option(
        "written", "where a test's expected value comes from: written (the writer's, checked by CodeT agreement) or "
        "executed (the writer's inputs, the outputs of the largest group of samples that agree on all of them; the "
        "docstring's examples are rewritten with those outputs)")
    max_new_tokens: int = option(320, "token limit of a solution")
    problem_max_new_tokens: int = option(200, "token limit of a problem stub; a stub that reaches it is dropped")
    tests_max_new_tokens: int = option(200, "token limit of the tests answer")
    batch_size: int = option(16, "seeds per batch: the unit of generation calls and of resume")
    min_tests: int = option(2, "the kept solution passes at least this many tests")
    min_agree: int = option(2, "solutions that must agree (pass exactly the same tests)")
    heldout_fraction: float = option(0.15, "share of kept problems held out as a HumanEval-format problem file")
    decontaminate: tuple[str, ...] = option(("offline",), "benchmarks to decontaminate against; 'offline' = every "
                                            "registered benchmark that loads without a download")
    benchmark_paths: dict[str, str] = option(help="local files for benchmarks that need one, e.g. {mbpp: sanitized-mbpp.json}",
                                             default_factory=dict)
    ngram: int = option(10, "word n-gram size of the overlap test")
    max_seed_lines: int = option(40, "longer seed functions are not used")
    out: str = option("data/selfgen", "output directory: train.jsonl, heldout.problems.jsonl, report.json and the stage files")
    sandbox: SandboxConfig = field(default_factory=lambda: SandboxConfig(timeout_s=5.0))

    def check(self) -> list[str]:
        problems = at_least_one(self, ("n_seeds", "n_samples", "n_tests", "max_tests", "max_new_tokens",
                                       "problem_max_new_tokens", "tests_max_new_tokens", "batch_size", "min_tests",
                                       "min_agree", "ngram", "max_seed_lines"))
        if not 0 <= self.fewshot <= len(sg.FEWSHOT):
            problems.append(f"fewshot: must be between 0 and {len(sg.FEWSHOT)}, got {self.fewshot}")
        if self.problem_temperature < 0 or self.temperature < 0:
            problems.append("temperature, problem_temperature: must be >= 0")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1], got {self.top_p}")
        if not 0 <= self.heldout_fraction < 1:
            problems.append(f"heldout_fraction: must be in [0, 1), got {self.heldout_fraction}")
        if self.seed_view not in sg.SEED_VIEWS:
            problems.append(f"seed_view: choose one of {', '.join(sg.SEED_VIEWS)}, got {self.seed_view!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            problems.append(f"dtype: choose one of auto, float32, bfloat16, float16, got {self.dtype!r}")
        if self.min_agree > self.n_samples + 1:
            problems.append(f"min_agree: {self.min_agree} is more than the {self.n_samples + 1} solutions per problem")
        if self.llm_base_url is not None and not self.llm_base_url.startswith(("http://", "https://")):
            problems.append(f"llm_base_url: must start with http:// or https://, got {self.llm_base_url!r}")
        if not self.sources:
            problems.append("sources: give at least one source")
        unknown = [b for b in self.decontaminate if b != "offline" and b.lower() not in BENCHMARKS]
        if unknown:
            problems.append(f"decontaminate: unknown benchmark(s) {', '.join(unknown)}; choose from offline, "
                            f"{', '.join(sorted(BENCHMARKS))}")
        return problems

    def model_config(self, **extra: Any) -> ModelConfig:
        """The writer as a ModelConfig; `extra` carries settings the CLI reads from the environment."""
        if self.llm_base_url:
            return ModelConfig(**{**extra, "name": self.writer, "backend": "openai", "base_url": self.llm_base_url})
        return ModelConfig(**{**extra, "name": self.writer, "dtype": self.dtype, "device": self.device})


# ------------------------------------------------------------------------------------------- stages


def _read_stage(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    repair_jsonl_tail(path)
    return {r["seed_id"]: r for r in iter_jsonl(path)}


def _tokens(outputs: Sequence[Sequence[Any]]) -> int:
    return sum(c.n_tokens for comps in outputs for c in comps)


class SelfGen:
    """One resumable run over `cfg.out`; `run()` does every batch not yet on disk."""

    def __init__(self, cfg: SelfGenConfig, seeds: Sequence[FunctionRecord], generator: Generator | None,
                 sandbox: Sandbox, benchmarks: Benchmarks, progress: Progress = lambda m: None) -> None:
        self.cfg, self.seeds, self.generator, self.sandbox = cfg, list(seeds), generator, sandbox
        self.benchmarks, self.progress = benchmarks, progress
        self.out = Path(cfg.out)
        self.state = {stage: _read_stage(self.out / f"{stage}.jsonl") for stage in STAGES}
        self.seen_names = set(sg.FEWSHOT_NAMES) | {r["problem"]["entry_point"] for r in self.state["problems"].values()
                                                  if r.get("problem")}

    def todo(self) -> list[FunctionRecord]:
        """Seeds with some step still to do."""
        return [s for s in self.seeds if s.id not in self.state["verified"]
                and self.state["problems"].get(s.id, {}).get("status", "ok") == "ok"]

    def run(self) -> dict[str, Any]:
        batches = [self.seeds[i : i + self.cfg.batch_size] for i in range(0, len(self.seeds), self.cfg.batch_size)]
        for b, batch in enumerate(batches):
            done = [s for s in batch if s.id in self.state["verified"]
                    or self.state["problems"].get(s.id, {}).get("status", "ok") != "ok"]
            if len(done) == len(batch):
                continue
            if self.generator is None:
                raise ValueError("SelfGen.run needs a generator: some seeds are not done")
            self.problems(batch)
            self.solutions(batch)
            self.tests(batch)
            self.verify(batch)
            report = self.write_outputs()
            c = report["counts"]
            self.progress(f"batch {b + 1}/{len(batches)}: {c['seeds_done']} seeds, {c['problems_parsed']} parsed, "
                          f"{c['problems_kept']} kept ({report['yield_per_seed']:.0%} of seeds), "
                          f"{report['tokens_per_s']:.0f} tok/s")
        return self.write_outputs()

    def _append(self, stage: str, records: list[dict[str, Any]]) -> None:
        with JsonlAppender(self.out / f"{stage}.jsonl") as sink:
            sink.write_many(records)
        for r in records:
            self.state[stage][r["seed_id"]] = r

    def _pending(self, stage: str, batch: Sequence[FunctionRecord]) -> list[FunctionRecord]:
        return [s for s in batch if self.state["problems"].get(s.id, {}).get("status") == "ok"
                and s.id not in self.state[stage]]

    # a. PROBLEM
    def problems(self, batch: Sequence[FunctionRecord]) -> None:
        todo = [s for s in batch if s.id not in self.state["problems"]]
        if not todo:
            return
        cfg = self.cfg
        prompts = [sg.problem_prompt(s, cfg.fewshot, cfg.max_seed_lines, cfg.seed_view) for s in todo]
        params = GenerationParams(max_new_tokens=cfg.problem_max_new_tokens, temperature=cfg.problem_temperature,
                                  top_p=cfg.top_p, stop=sg.PROBLEM_STOPS, batch_size=cfg.batch_size, seed=cfg.seed)
        t0 = time.perf_counter()
        outputs = self.generator.generate(prompts, params)  # type: ignore[union-attr]
        share = (time.perf_counter() - t0) / len(todo)
        records = []
        for s, prompt, comps in zip(todo, prompts, outputs):
            raw = comps[0].text if comps else ""
            rec: dict[str, Any] = {"seed_id": s.id, "raw": raw, "n_tokens": sum(c.n_tokens for c in comps),
                                   "wall_s": round(share, 3), "status": "ok", "problem": None}
            if comps and comps[0].finish_reason == "length":  # a runaway list of examples, cut mid-docstring
                rec["cut"] = True
            text = (sg.cut_runaway if rec.get("cut") else sg.close_docstring)(prompt.response_prefix + raw)
            parsed = (sg.parse_problem(text, self.seen_names, require_examples=cfg.require_examples)
                      if text is not None else "too long")
            if isinstance(parsed, str):
                rec["status"] = parsed
            else:
                leak = self.benchmarks.leak(parsed.prompt, sg.signature_key(parsed.prompt, parsed.entry_point))
                rec["status"] = leak or "ok"
                rec["problem"] = asdict(parsed)
                self.seen_names.add(parsed.entry_point)
            records.append(rec)
        self._append("problems", records)

    def _problem(self, seed_id: str) -> dict[str, Any]:
        p = self.state["problems"][seed_id]["problem"]
        return {"task_id": seed_id, "prompt": p["prompt"], "entry_point": p["entry_point"], "test": ""}

    # b. SOLUTIONS: the benchmark's own chat prompt and post-processing (as experiments.generate does)
    def solutions(self, batch: Sequence[FunctionRecord]) -> None:
        todo = self._pending("solutions", batch)
        if not todo:
            return
        cfg = self.cfg
        problems = [self._problem(s.id) for s in todo]
        prompts = [build_prompt(p, PromptConfig(), "chat") for p in problems]
        base = dict(max_new_tokens=cfg.max_new_tokens, stop=stops_for("chat"), batch_size=cfg.batch_size, seed=cfg.seed)
        t0 = time.perf_counter()
        greedy = self.generator.generate(prompts, GenerationParams(temperature=0.0, **base))  # type: ignore[union-attr]
        sampled = self.generator.generate(prompts, GenerationParams(  # type: ignore[union-attr]
            temperature=cfg.temperature, top_p=cfg.top_p, n=cfg.n_samples, **base))
        share = (time.perf_counter() - t0) / len(todo)
        records = []
        for s, p, prompt, g, smp in zip(todo, problems, prompts, greedy, sampled):
            comps = [*g[:1], *smp]
            records.append({
                "seed_id": s.id, "greedy": 0, "wall_s": round(share, 3), "n_tokens": sum(c.n_tokens for c in comps),
                "completions": [to_completion(prompt.response_prefix + c.text, p["entry_point"], "chat") for c in comps],
            })
        self._append("solutions", records)

    # c. TESTS: from the stub alone
    def tests(self, batch: Sequence[FunctionRecord]) -> None:
        todo = self._pending("tests", batch)
        if not todo:
            return
        cfg = self.cfg
        problems = [self.state["problems"][s.id]["problem"] for s in todo]
        prompts = [sg.tests_prompt(p["prompt"], cfg.n_tests) for p in problems]
        params = GenerationParams(max_new_tokens=cfg.tests_max_new_tokens, temperature=0.0, stop=TEST_STOPS,
                                  batch_size=cfg.batch_size, seed=cfg.seed)
        t0 = time.perf_counter()
        outputs = self.generator.generate(prompts, params)  # type: ignore[union-attr]
        share = (time.perf_counter() - t0) / len(todo)
        records = []
        for s, p, prompt, comps in zip(todo, problems, prompts, outputs):
            raw = comps[0].text if comps else ""
            model_tests = sg.parse_tests(prompt.response_prefix + raw, p["entry_point"], cfg.max_tests)
            doc_tests = sg.doctest_asserts(p["docstring"], p["entry_point"]) if cfg.docstring_tests else []
            records.append({"seed_id": s.id, "raw": raw, "n_tokens": sum(c.n_tokens for c in comps),
                            "wall_s": round(share, 3), "model_tests": model_tests,
                            "doc_tests": [t for t in doc_tests if t not in model_tests]})
        self._append("tests", records)

    def _written(self, seed_id: str) -> tuple[dict[str, Any], dict[str, Any], list[str], list[str], list[str], list[str]]:
        """What the writer produced for a seed: (benchmark-form problem, parsed stub, its docstring examples as
        asserts, the model's asserts, the sampled completions, the distinct ones in order)."""
        problem = self._problem(seed_id)
        written = self.state["problems"][seed_id]["problem"]
        examples = (sg.doctest_asserts(written["docstring"], written["entry_point"]) if self.cfg.docstring_tests
                    else [])
        comps = self.state["solutions"][seed_id]["completions"]
        return problem, written, examples, self.state["tests"][seed_id]["model_tests"], comps, list(dict.fromkeys(comps))

    # d. VERIFY: every (distinct solution, test) pair, plus a stub that returns None to find empty tests
    def verify(self, batch: Sequence[FunctionRecord]) -> None:
        todo = self._pending("verified", batch)
        if not todo:
            return
        if self.cfg.expected == "executed":
            return self.verify_executed(todo)
        cfg = self.cfg
        t0 = time.perf_counter()
        plans, programs = [], []
        for s in todo:
            problem, written, examples, model_tests, comps, distinct = self._written(s.id)
            tests = list(dict.fromkeys([*examples, *model_tests]))[: cfg.max_tests]  # examples first: all kept
            start = len(programs)
            for code in [*distinct, ""]:  # the last row: the bare stub
                programs += [build_program({**problem, "test": sg.check_code([a])}, code) for a in tests]
            plans.append((s, problem, tests, comps, distinct, start, len(examples)))
        results = self.sandbox.run_many(programs)
        kept: list[tuple[Any, ...]] = []
        records: list[dict[str, Any]] = []
        for s, problem, tests, comps, distinct, start, n_examples in plans:
            n_t = len(tests)
            rows = [[results[start + i * n_t + j].passed for j in range(n_t)] for i in range(len(distinct) + 1)]
            null = rows.pop()
            passed = [rows[distinct.index(c)] for c in comps]  # one row per sample: duplicates count (CodeT)
            rec: dict[str, Any] = {"seed_id": s.id, "n_tests": n_t, "n_distinct": len(distinct),
                                   "stub_passes": sum(null), "status": "", "kept": None}
            sel = sg.select_codet(passed, greedy=0, informative=[not x for x in null], min_tests=cfg.min_tests,
                                  min_agree=cfg.min_agree) if n_t else "no tests"
            if isinstance(sel, str):
                rec["status"] = sel
                records.append(rec)
                continue
            if cfg.consistent_examples and not all(passed[sel.solution][:n_examples]):
                rec["status"] = "docstring example fails"  # the prompt would teach a wrong example
                records.append(rec)
                continue
            spliced = sg.splice(problem["prompt"], comps[sel.solution], problem["entry_point"])
            if spliced is None:
                rec["status"] = "no body"
                records.append(rec)
                continue
            asserts = [tests[j] for j in sel.tests]
            rec.update(n_agree=len(sel.group), n_distinct_agree=len({comps[i] for i in sel.group}))
            kept.append((rec, problem, asserts, spliced, sel))
            records.append(rec)
        self._finish(todo, kept, records, t0)

    def verify_executed(self, todo: Sequence[FunctionRecord]) -> None:
        """Expected values from execution: the writer's inputs, the agreeing samples' outputs (`expected: executed`)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        marker = f"DORAG-PROBE-{secrets.token_hex(8)}"  # what the sandboxed code prints cannot guess it
        plans, programs = [], []
        for s in todo:
            problem, written, examples, model_tests, comps, distinct = self._written(s.id)
            doc_calls = sg.doctest_calls(written["docstring"], written["entry_point"])
            written_asserts = [*examples, *model_tests]
            calls = list(dict.fromkeys([*doc_calls, *(c for c in map(sg.call_of, written_asserts) if c)]))
            calls = calls[: cfg.max_tests]
            expected: dict[str, str] = {}  # the writer's value for each call, where it gave a literal one
            for a in written_asserts:
                c, e = sg.call_of(a), sg.expected_of(a)
                if c and e is not None:
                    expected.setdefault(c, e)
            start = len(programs)
            if calls:
                probe = sg.probe_test(calls, marker)
                programs += [build_program({**problem, "test": probe}, code) for code in [*distinct, ""]]
            plans.append((s, problem, calls, comps, distinct, start, set(doc_calls), [expected.get(c) for c in calls]))
        results = self.sandbox.run_many(programs)
        kept: list[tuple[Any, ...]] = []
        records: list[dict[str, Any]] = []
        for s, problem, calls, comps, distinct, start, doc_calls, written in plans:
            rec: dict[str, Any] = {"seed_id": s.id, "n_tests": len(calls), "n_distinct": len(distinct),
                                   "stub_passes": 0, "status": "", "kept": None}
            records.append(rec)
            if not calls:
                rec["status"] = "no inputs"
                continue
            rows = [sg.read_probe(results[start + i].stderr_tail, marker, len(calls)) for i in range(len(distinct) + 1)]
            stub = rows.pop()
            sel = sg.select_by_outputs([rows[distinct.index(c)] for c in comps], stub, greedy=0,
                                       min_agree=cfg.min_agree, min_tests=cfg.min_tests, written=written)
            if isinstance(sel, str):
                rec["status"] = sel
                continue
            outputs = {calls[j]: out for j, out in zip(sel.calls, sel.outputs)}
            prompt = sg.rewrite_examples(problem["prompt"], problem["entry_point"], outputs)
            if prompt is None:
                rec["status"] = "no usable example"  # the docstring would show none
                continue
            problem = {**problem, "prompt": prompt}
            spliced = sg.splice(prompt, comps[sel.solution], problem["entry_point"])
            if spliced is None:
                rec["status"] = "no body"
                continue
            asserts = [sg.output_assert(c, o) for c, o in outputs.items()]
            rec.update(n_agree=len(sel.group), n_distinct_agree=len({comps[i] for i in sel.group}),
                       n_examples_rewritten=sum(1 for c in outputs if c in doc_calls))
            kept.append((rec, problem, asserts, spliced, sel))
        self._finish(todo, kept, records, t0)

    def _finish(self, todo: Sequence[FunctionRecord], kept: list[tuple[Any, ...]], records: list[dict[str, Any]],
                t0: float) -> None:
        # the records as written must pass as written: the whole target, and prompt + canonical body
        checks = []
        for rec, problem, asserts, spliced, _ in kept:
            test = sg.check_code(asserts)
            checks.append(f"{spliced.target}\n{test}\ncheck({problem['entry_point']})")
            checks.append(build_program({**problem, "test": test}, spliced.body))
        outcome = self.sandbox.run_many(checks)
        for k, (rec, problem, asserts, spliced, sel) in enumerate(kept):
            if not (outcome[2 * k].passed and outcome[2 * k + 1].passed):
                rec["status"] = "record fails its tests"
                continue
            leak = self.benchmarks.leak(spliced.target + "\n" + sg.check_code(asserts))
            if leak:
                rec["status"] = leak
                continue
            written = self.state["problems"][rec["seed_id"]]["problem"]
            rec["status"] = "kept"
            rec["kept"] = asdict(sg.Kept(
                seed_function=rec["seed_id"].replace(":", "."), prompt=problem["prompt"],
                entry_point=problem["entry_point"], asserts=asserts, target=spliced.target, body=spliced.body,
                n_samples=len(self.state["solutions"][rec["seed_id"]]["completions"]), n_agree=len(sel.group),
                writer=self.cfg.writer,
                meta={"n_distinct_agree": rec["n_distinct_agree"], "n_examples": written["n_examples"],
                      "expected": self.cfg.expected}))
        share = (time.perf_counter() - t0) / len(todo)
        for rec in records:
            rec["wall_s"] = round(share, 3)
        self._append("verified", records)

    # f. OUTPUT
    def kept(self) -> list[sg.Kept]:
        return [sg.Kept(**r["kept"]) for s in self.seeds if (r := self.state["verified"].get(s.id)) and r.get("kept")]

    def write_outputs(self) -> dict[str, Any]:
        cfg = self.cfg
        kept = self.kept()
        train, held = sg.split_kept(kept, cfg.heldout_fraction, cfg.seed)
        write_jsonl(self.out / "train.jsonl", train)
        write_jsonl(self.out / "heldout.problems.jsonl", held)
        report = self.report(len(train), len(held))
        write_json(self.out / "report.json", report)
        return report

    def report(self, n_train: int, n_heldout: int) -> dict[str, Any]:
        st = self.state
        ids = {s.id for s in self.seeds}
        probs = [r for k, r in st["problems"].items() if k in ids]
        sols = [r for k, r in st["solutions"].items() if k in ids]
        tests = [r for k, r in st["tests"].items() if k in ids]
        ver = [r for k, r in st["verified"].items() if k in ids]
        status = Counter(r["status"] for r in probs)
        verdict = Counter(r["status"] for r in ver)
        parsed = sum(1 for r in probs if r.get("problem"))
        n_kept = verdict.get("kept", 0)
        drops: Counter[str] = Counter()
        for key, v in (*status.items(), *verdict.items()):
            if key.startswith(("contaminated:", "signature:")):
                drops[key] += v
        seconds = {name: round(sum(r.get("wall_s", 0.0) for r in rows), 1)
                   for name, rows in zip(STAGES, (probs, sols, tests, ver))}
        tokens = {name: sum(r.get("n_tokens", 0) for r in rows) for name, rows in zip(STAGES[:3], (probs, sols, tests))}
        gen_s = seconds["problems"] + seconds["solutions"] + seconds["tests"]
        finished = {s.id for s in self.seeds if s.id in st["verified"] or st["problems"].get(s.id, {}).get("status", "ok") != "ok"}
        done = len(finished)
        parsed_done = sum(1 for r in probs if r.get("problem") and r["seed_id"] in finished)
        return {
            "writer": self.cfg.writer, "seeds_planned": len(self.seeds),
            "counts": {
                "seeds_done": done, "problems_written": len(probs), "problems_parsed": parsed,
                "problems_clean": status.get("ok", 0), "solutions_sampled": sum(len(r["completions"]) for r in sols),
                "tests_written": sum(len(r["model_tests"]) for r in tests),
                "tests_from_docstrings": sum(len(r["doc_tests"]) for r in tests),
                "problems_kept": n_kept, "solutions_kept": n_kept,
                "solutions_agreeing": sum(r.get("n_agree", 0) for r in ver if r["status"] == "kept"),
                "train": n_train, "heldout": n_heldout,
            },
            "pass_rate": n_kept / parsed_done if parsed_done else 0.0,  # kept / parsed, over seeds done
            "yield_per_seed": n_kept / done if done else 0.0,
            "problem_rejections": dict(status.most_common()),
            "verification": dict(verdict.most_common()),
            "decontamination_drops": dict(sorted(drops.items())),
            "decontamination_benchmarks": sorted(self.benchmarks.grams),
            "decontamination_skipped": self.benchmarks.skipped,
            "wall_s": seconds, "tokens": tokens,
            "tokens_per_s": sum(tokens.values()) / gen_s if gen_s else 0.0,
        }


# ------------------------------------------------------------------------------------------- entry


def pick_seeds(cfg: SelfGenConfig, benchmarks: Benchmarks, records: Sequence[FunctionRecord] | None = None,
               ) -> tuple[list[FunctionRecord], int]:
    """The run's seeds (and how many candidates were dropped as overlapping a benchmark)."""
    if records is None:
        from dorag.data.synth import records_from_sources

        records = records_from_sources(cfg.sources)
    ranked = sg.select_seeds(records, len(records), cfg.seed, cfg.max_seed_lines)
    seeds, dropped = [], 0
    for rec in ranked:
        if len(seeds) == cfg.n_seeds:
            break
        if benchmarks.leak(rec.code):
            dropped += 1
            continue
        seeds.append(rec)
    if not seeds:
        raise DataError(f"no usable seed functions in {', '.join(cfg.sources)} (small, documented, pure functions)")
    return seeds, dropped


def run_selfgen(cfg: SelfGenConfig, load_generator: Callable[[], Generator] | None, progress: Progress = lambda m: None,
                records: Sequence[FunctionRecord] | None = None) -> dict[str, Any]:
    """Run (or resume) a self-generation into `cfg.out` and return its report.

    Args:
        load_generator: loads the writer; called only when some seed still needs work.
        records: candidate seed functions (default: read from `cfg.sources`).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {out} is a file; give a directory")
    with exclusive(out, "dorag data selfgen"):
        benchmarks = Benchmarks.load(cfg.decontaminate, cfg.benchmark_paths, cfg.ngram)
        seeds, seed_drops = pick_seeds(cfg, benchmarks, records)
        progress(f"{len(seeds)} seeds ({seed_drops} dropped as overlapping a benchmark); decontaminating against "
                 f"{', '.join(sorted(benchmarks.grams))}")
        from dorag.core.config import dump_yaml

        (out / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
        with Sandbox(cfg.sandbox) as sandbox:
            job = SelfGen(cfg, seeds, None, sandbox, benchmarks, progress)
            if job.todo() and load_generator is not None:
                job.generator = load_generator()
            report = job.run()
            report["sandbox"] = sandbox.isolation()
        warn_weaker(report["sandbox"])
        report["seeds_dropped_as_benchmark_overlap"] = seed_drops
        write_json(out / "report.json", report)
        return report
