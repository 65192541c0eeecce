"""The Unseen-API benchmark: canonical solutions pass, wrong guesses fail, every listed API is real and used."""

from __future__ import annotations

import ast
import re

import pytest

from dorag.core.io import write_jsonl
from dorag.evaluation.benchmarks import load_problems
from dorag.evaluation.evaluate import evaluate_samples, load_samples, summarize
from dorag.evaluation.sandbox import Sandbox, SandboxConfig
from dorag.evaluation.unseen_api import api_names, corpus, load_library, qrels, reference_page, resolve_api

# What a model that knows pandas/numpy but not zorbel would write instead of each zorbel name.
GUESSES = {
    "tally": "sum", "midline": "mean", "spread": "ptp", "crest": "argmax", "trough": "argmin", "slope": "trend",
    "breaches": "crossings", "sigil": "checksum", "nudge": "shift", "amplify": "scale", "lift": "offset",
    "pinch": "clip", "remap": "map", "sieve": "filter", "thin": "downsample", "steps": "diff", "accrue": "cumsum",
    "smooth": "rolling_mean", "drift": "rolling", "echo": "lag", "centre": "demean", "temper": "zscore",
    "podium": "nlargest", "braid": "combine", "splice": "concat", "overlay": "update", "mesh": "align",
    "fissures": "gaps", "mend": "fillna", "chop": "split", "coarsen": "resample", "streaks": "runs",
    "inscribe": "to_csv", "decipher": "read_csv", "spool": "Series", "thread": "from_pairs", "hollow": "full",
    "rung": "percentile", "excerpt": "slice", "Gauge": "Stats", "Alarm": "Threshold",
    "StampAbsent": "KeyError", "HollowReel": "EmptyError", "StampClash": "ValueError", "FlatReel": "ZeroDivisionError",
    "WidthFault": "ValueError", "LedgerFault": "ParseError",
}
METHOD_GUESSES = {"holds": "contains", "fore": "head", "aft": "tail", "stretch": "scale_index", "at": "loc",
                  "span": "range", "stamps": "index", "heights": "values", "knots": "items", "feed": "update",
                  "reading": "summary", "absorb": "extend", "scan": "check", "first": "first_trigger"}


@pytest.fixture(scope="module")
def problems():
    return load_problems("unseen-api")


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(SandboxConfig(workers=2))


def run(problems, completions, sandbox, tmp_path):
    samples = tmp_path / "s.jsonl"
    write_jsonl(samples, [{"task_id": p["task_id"], "completion": c} for p, c in zip(problems, completions)])
    results = evaluate_samples(load_samples(samples, problems), problems, tmp_path / "r.jsonl", sandbox)
    return results, summarize(results, problems, (1,))


def test_size_levels_and_format(problems):
    assert len(problems) >= 80
    levels = {p["meta"]["difficulty"] for p in problems}
    assert levels == {"single", "compose", "multi"}
    for p in problems:
        assert p["prompt"].startswith("import zorbel\n") and f"def {p['entry_point']}(" in p["prompt"]
        body = p["canonical_solution"]
        assert all(line.startswith("    ") for line in body.splitlines() if line.strip()), p["task_id"]  # a body
        tree = ast.parse(p["prompt"] + body)
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == p["entry_point"]]
        assert len(defs) == 1 and len(defs[0].body) > 1, p["task_id"]  # the docstring and the body's statements


def test_canonical_solutions_pass_in_the_sandbox(problems, sandbox, tmp_path):
    results, summary = run(problems, [p["canonical_solution"] for p in problems], sandbox, tmp_path)
    assert [(r["task_id"], r["detail"]) for r in results if not r["passed"]] == []
    assert summary["pass@1"]["value"] == 1.0


def test_empty_completions_fail(problems, sandbox, tmp_path):
    _, summary = run(problems, [""] * len(problems), sandbox, tmp_path)
    assert summary["pass@1"]["value"] == 0.0


def swap_for_guesses(solution: str) -> str:
    out = re.sub(r"zorbel\.([A-Za-z_]+)", lambda m: f"zorbel.{GUESSES.get(m.group(1), m.group(1))}", solution)
    out = re.sub(r"\.([a-z_]+)\(", lambda m: f".{METHOD_GUESSES.get(m.group(1), m.group(1))}(", out)
    return out.replace("zorbel.KeyError", "KeyError").replace("zorbel.ValueError", "ValueError") \
              .replace("zorbel.ZeroDivisionError", "ZeroDivisionError")


# The first statements of a body: `zorbel` becomes a local view of the module that also answers to each
# guessed name (not set on the module itself, whose own code would then call `sum` and get zorbel's), and
# each zorbel class answers to the guessed method names.
ALIASES = (
    "    import sys as _sys\n"
    "    class _Guessable:\n"
    "        def __getattr__(self, name):\n"
    "            return getattr(_sys.modules['zorbel'], {reverse!r}.get(name, name))\n"
    "    for _cls in [c for c in vars(_sys.modules['zorbel']).values() if isinstance(c, type)]:\n"
    "        for _real, _guess in {methods!r}.items():\n"
    "            if hasattr(_cls, _real) and not hasattr(_cls, _guess):\n"
    "                setattr(_cls, _guess, getattr(_cls, _real))\n"
    "    zorbel = _Guessable()\n"
)


def test_no_guessed_name_exists_on_zorbel():
    lib = load_library()
    names = set(dir(lib))
    assert not names & set(GUESSES.values()) - {"KeyError", "ValueError", "ZeroDivisionError"}
    for cls in (c for c in vars(lib).values() if isinstance(c, type)):
        assert not set(dir(cls)) & set(METHOD_GUESSES.values()), cls.__name__


def test_popular_library_guesses_fail_and_only_because_the_names_are_wrong(problems, sandbox, tmp_path):
    swapped = [swap_for_guesses(p["canonical_solution"]) for p in problems]
    assert all(s != p["canonical_solution"] for s, p in zip(swapped, problems))
    results, _ = run(problems, swapped, sandbox, tmp_path / "guess")
    assert [r["task_id"] for r in results if r["passed"]] == []
    # the control: the same swapped programs, on a zorbel that has the guessed names as aliases, pass -- so
    # the swap breaks nothing else, and a model that guesses right semantics with wrong names still fails
    aliases = ALIASES.format(reverse={v: k for k, v in GUESSES.items()}, methods=METHOD_GUESSES)
    results, _ = run(problems, [aliases + s for s in swapped], sandbox, tmp_path / "control")
    failed = {r["task_id"] for r in results if not r["passed"]}
    # except the tasks that catch one of zorbel's exceptions: the guess (KeyError, ValueError, ...) is a builtin
    # that zorbel's exception does not subclass, a wrong guess of semantics and not only of a name
    builtin = [k for k, v in GUESSES.items() if v in ("KeyError", "ValueError", "ZeroDivisionError")]
    catches = {p["task_id"] for p in problems if any(f"zorbel.{e}" in p["canonical_solution"] for e in builtin)}
    assert failed == catches and len(failed) < len(problems) // 10, sorted(failed ^ catches)


def test_every_listed_api_exists_and_is_used(problems):
    lib = load_library()
    known = set(api_names(lib))
    for p in problems:
        apis = p["meta"]["apis"]
        assert apis, p["task_id"]
        for api in apis:
            assert api in known, f"{p['task_id']}: {api} is not a zorbel API"
            resolve_api(lib, api)
            name = api.split(".")[-1]
            used = f"zorbel.{api}" in p["canonical_solution"] or (
                "." in api and re.search(rf"\.{name}\(", p["canonical_solution"]))
            assert used, f"{p['task_id']}: canonical solution does not use {api}"


def test_corpus_and_qrels_cover_every_task(problems):
    ids = {d["id"] for d in corpus()}
    rels = qrels(problems)
    for p in problems:
        assert rels[p["task_id"]] and set(rels[p["task_id"]]) <= ids
        assert len(rels[p["task_id"]]) == 2 * len(p["meta"]["apis"])  # source and reference doc per API
    page = reference_page()
    assert page.startswith("# zorbel 1.3.0 reference") and "## `zorbel.pinch(reel: 'Reel', ceiling" in page


def test_no_task_solution_leaks_into_the_corpus(problems):
    from dorag.data.leakage import LeakageChecker

    checker = LeakageChecker(problems)
    assert [f for f in checker.scan(corpus()) if f["kind"] == "solution"] == []
    # the same check on a copy of the corpus with solutions planted into documents finds exactly those: one
    # pasted at the end of a source file, one renamed in a markdown answer after a reference document (its
    # inner `return zorbel.smooth(r, width)` is task 17's whole solution, renamed, so that one is found too)
    docs = [dict(d) for d in corpus()]
    bare, wrapped = problems[0], problems[-1]
    docs[3]["text"] += "\n\nreel = spool([1, 2])\n" + bare["canonical_solution"].strip() + "\n"
    renamed = wrapped["canonical_solution"].replace("reel", "r")
    docs[7]["text"] += "\n\nAnswer:\n```python\n" + renamed + "```\n"
    findings = [f for f in checker.scan(docs) if f["kind"] == "solution"]
    smooth = next(p["task_id"] for p in problems if p["canonical_solution"] == "    return zorbel.smooth(reel, width)\n")
    assert {(f["doc_id"], f["task_id"]) for f in findings} == {
        (docs[3]["id"], bare["task_id"]), (docs[7]["id"], wrapped["task_id"]), (docs[7]["id"], smooth)}


# ---------------------------------------------------------------- the version-shift variant (numpy 2.x)

LEGACY = {  # what a model trained before numpy 2.0 writes, for the tasks a name swap cannot express
    "float_view": "    return np.array(values, copy=False, dtype=np.float64)\n",
    "row_ranges": "    return np.asarray(a).ptp(axis=1)\n",
    "array_bytes": "    return np.asarray(a).tostring()\n",
    "with_item": "    b = np.array(a, copy=True)\n    b.itemset(index, value)\n    return b\n",
    "bool_array": "    return np.array(values, dtype=np.bool8)\n",
    "as_matrix": "    return np.mat(rows)\n",
}


def legacy_solution(p) -> str:
    if p["entry_point"] in LEGACY:
        return LEGACY[p["entry_point"]]
    new = next(a for a in p["meta"]["apis"] if f"np.{a}" in p["canonical_solution"])
    return re.sub(rf"np\.{new}\b", f"np.{p['meta']['removed'][0]}", p["canonical_solution"])


def test_shift_variant_new_spellings_pass_and_removed_ones_fail(sandbox, tmp_path):
    shift = load_problems("unseen-api-shift")
    assert len(shift) >= 20
    results, summary = run(shift, [p["canonical_solution"] for p in shift], sandbox, tmp_path / "new")
    assert [(r["task_id"], r["detail"]) for r in results if not r["passed"]] == []
    legacy = [legacy_solution(p) for p in shift]
    assert all(l != p["canonical_solution"] for l, p in zip(legacy, shift))
    results, _ = run(shift, legacy, sandbox, tmp_path / "old")
    assert [r["task_id"] for r in results if r["passed"]] == []


def test_committed_reference_page_is_current():
    from pathlib import Path

    committed = (Path(__file__).parents[2] / "docs" / "zorbel-reference.md").read_text()
    assert committed == reference_page(), "regenerate: python -m dorag.evaluation.unseen_api reference > docs/zorbel-reference.md"
