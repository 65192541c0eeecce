"""Self-generated problems: parsing, CodeT selection, records, decontamination, resume (a scripted writer, the real sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.config import from_dict, load_config
from dorag.core.errors import ConfigError
from dorag.core.io import read_jsonl
from dorag.data import selfgen as sg
from dorag.data.ast_extract import extract_functions
from dorag.data.prompts import RESPONSE_PREFIX
from dorag.evaluation.benchmarks import load_humaneval, load_problem_file
from dorag.evaluation.evaluate import build_program
from dorag.evaluation.sandbox import Sandbox
from dorag.experiments.selfgen import SelfGenConfig, run_selfgen
from dorag.models.generator import Completion

ROOT = Path(__file__).parents[2]

STUB = '''from typing import List


def running_max(values: List[int]) -> List[int]:
    """Return the running maximum of `values`: item i is the largest of values[0..i].
    >>> running_max([1, 3, 2, 5])
    [1, 3, 3, 5]
    """
    ...

print(running_max([1, 2]))
'''


# ----------------------------------------------------------------------------------------- parsing


def test_parse_problem_accepts_a_stub_and_normalises_it_to_humaneval_form():
    p = sg.parse_problem("```python\n" + STUB + "```")
    assert isinstance(p, sg.ParsedProblem)
    assert p.entry_point == "running_max" and p.n_examples == 1
    assert p.prompt.startswith("from typing import List\n\n\ndef running_max(values: List[int]) -> List[int]:\n")
    assert p.prompt.endswith('    [1, 3, 3, 5]\n    """\n')  # ends after the docstring; the demo print is gone
    assert "..." not in p.prompt and "print" not in p.prompt


@pytest.mark.parametrize("text, reason", [
    ("Here is a problem: compute the running maximum of a list, e.g. [1,3,2] -> [1,3,3].", "syntax"),
    ("```python\nx = 1\n```", "extra code"),
    ("```python\n" + STUB + "\ndef helper(x):\n    return x\n```", "several definitions"),
    ("```python\ndef running_max(values):\n    ...\n```", "no docstring"),
    ("```python\n" + STUB.replace("    ...\n", "    return sorted(values)\n") + "```", "has a body"),
    ("```python\nimport numpy as np\n\n" + STUB + "```", "non-stdlib import"),
    ('```python\ndef answer() -> int:\n    """Return the answer to the question of life and everything.\n'
     '    >>> answer()\n    42\n    """\n```', "no parameters"),
    ('```python\ndef double(x: int) -> int:\n    """Double it.\n    >>> double(2)\n    4\n    """\n```',
     "trivial docstring"),
])
def test_parse_problem_rejects(text, reason):
    assert sg.parse_problem(text) == reason


def test_parse_problem_rejects_a_name_already_used():
    assert sg.parse_problem(STUB, seen_names={"running_max"}) == "duplicate name"


def test_parse_problem_makes_a_private_seed_name_public_everywhere_it_is_called():
    private = STUB.replace("running_max", "_running_max")
    p = sg.parse_problem(private)
    assert isinstance(p, sg.ParsedProblem) and p.entry_point == "running_max"
    assert "_running_max" not in p.prompt and ">>> running_max([1, 3, 2, 5])" in p.prompt
    assert sg.parse_problem(private, seen_names={"running_max"}) == "duplicate name"
    assert sg.parse_problem(STUB.replace("running_max", "__r")) == "trivial name"


def test_close_docstring_restores_quotes_cut_by_the_stop_sequence():
    cut = STUB.split('    """\n    ...')[0]  # what generation returns when it stops at the closing quotes
    assert isinstance(sg.parse_problem(sg.close_docstring(cut)), sg.ParsedProblem)
    assert sg.close_docstring(STUB) == STUB


def test_parse_tests_keeps_each_assert_that_calls_the_function():
    text = sg.TESTS_PREFIX + ("[1, 2]) == [1, 2]\n    assert running_max([3, 1]) == [3, 3]\n"
                              "    assert len([1]) == 1\n    assert candidate([1, 2]) == [1, 2]\n"
                              "    assert candidate([3, 1]) == [3, 3], 'Test case 5 failed'\n"
                              "    assert candidate([5, 4, 9]) == [5, 5, 9")  # the last one is cut off
    tests = sg.parse_tests(text, "running_max")
    assert tests == ["assert candidate([1, 2]) == [1, 2]", "assert candidate([3, 1]) == [3, 3]"]


def test_doctest_examples_become_asserts():
    doc = ("Running max.\n>>> running_max([1, 3, 2])\n[1, 3, 3]\n>>> running_max([])\n[]\n"
           ">>> running_max(x)\n<object at 0x1>\n")
    assert sg.doctest_asserts(doc, "running_max") == ["assert candidate([1, 3, 2]) == [1, 3, 3]",
                                                     "assert candidate([]) == []"]


def test_summary_view_shows_the_seeds_signature_and_summary_but_not_its_code():
    rec = extract_functions('def clip(v, lo, hi):\n    """Clip v into [lo, hi].\n\n    Longer notes.\n    """\n'
                            "    if v < lo:\n        return lo\n    return min(v, hi)\n", "m.py", "m")[0]
    summary = sg.problem_prompt(rec, fewshot=1, view="summary")
    code = sg.problem_prompt(rec, fewshot=0, view="code")
    assert len(summary.messages) == 3 and summary.response_prefix == "```python\n"
    last = summary.messages[-1][1]
    assert "`m.clip(v, lo, hi)`: Clip v into [lo, hi]." in last and "return lo" not in last and "Longer" not in last
    assert "return lo" in code.messages[-1][1] and len(code.messages) == 1


# ------------------------------------------------------------------------------------------- CodeT


def test_codet_prefers_the_agreeing_group_over_a_lone_solution_passing_more():
    passed = [[True, True, True, False],   # 0: alone, 3 tests -> score 3
              [True, True, False, False],  # 1, 2: agree on 2 tests -> score 4
              [True, True, False, False],
              [False, False, False, True]]
    sel = sg.select_codet(passed, greedy=0)
    assert isinstance(sel, sg.Selection)
    assert sel.solution == 1 and sel.group == (1, 2) and sel.tests == (0, 1) and sel.score == 4


def test_codet_keeps_the_greedy_solution_when_it_is_in_the_group():
    passed = [[True, True], [True, True], [True, True]]
    assert sg.select_codet(passed, greedy=2).solution == 2


def test_codet_rejects_a_lone_solution_and_unanimous_failure():
    assert sg.select_codet([[True, True, True], [False] * 3, [False, False, True]]) == "no agreement"
    assert sg.select_codet([[False, False], [False, False]]) == "all tests failed"
    assert sg.select_codet([[True, False], [True, False]]) == "passes too few tests"


def test_codet_ignores_tests_that_a_stub_passes():
    passed = [[True, True, True], [True, True, True]]
    sel = sg.select_codet(passed, informative=[True, True, False])
    assert sel.tests == (0, 1)
    assert sg.select_codet(passed, informative=[True, False, False]) == "too few tests"


# ----------------------------------------------------------------------------------------- records


def test_splice_puts_the_body_under_the_problems_docstring():
    prompt = sg.parse_problem(STUB).prompt
    completion = ("\nimport itertools\nfrom typing import List\n\ndef running_max(values):\n    \"\"\"Another doc.\"\"\"\n"
                  "    return list(itertools.accumulate(values, _bigger))\n\ndef _bigger(a, b):\n    return max(a, b)\n")
    s = sg.splice(prompt, completion, "running_max")
    assert s.target.startswith("import itertools\n\nfrom typing import List\n\n\ndef running_max(values: List[int])")
    assert "Another doc" not in s.target and s.body.startswith("    return list(itertools.accumulate(")
    test = "\ndef check(candidate):\n    assert candidate([1, 3, 2]) == [1, 3, 3]\n\ncheck(running_max)"
    with Sandbox() as box:
        assert box.run(s.target + test).passed
        assert box.run(build_program({"prompt": prompt, "entry_point": "running_max",
                                      "test": test.rsplit("\n", 1)[0]}, s.body)).passed
    assert sg.splice(prompt, "\ndef running_max(values):\n    ...\n", "running_max") is None


def test_seed_selection_prefers_small_pure_functions_and_never_takes_zorbel():
    src = ('def clamp_all(values, lo, hi):\n    """Clamp every value into the closed range from lo to hi."""\n'
           "    out = []\n    for v in values:\n        out.append(min(max(v, lo), hi))\n    return out\n\n\n"
           'def read_config(path):\n    """Read the configuration file at the given path."""\n'
           "    with open(path) as fh:\n        return [line for line in fh if line]\n")
    recs = extract_functions(src, "lib.py", "lib")
    zorbel = extract_functions(src.replace("clamp_all", "clamp_series"), "src/dorag/evaluation/unseen_api/zorbel.py", "zorbel")
    seeds = sg.select_seeds([*recs, *zorbel], 10, seed=0)
    assert [s.id for s in seeds] == ["lib:clamp_all"]
    assert sg.seed_tier(recs[0]) == 0


# ------------------------------------------------------------------------------ the whole pipeline

SEED_SRC = "".join(
    f'def seed_{i}(values, k):\n    """Return the values of the list that are larger than k, seed {i}."""\n'
    f"    out = []\n    for v in values:\n        if v > k + {i}:\n            out.append(v)\n    return out\n\n\n"
    for i in range(6))

PROBLEMS = {  # seed name -> the stub the scripted writer answers with
    "seed_0": ("def add_offsets(values: list, k: int) -> list:\n"
               '    """Add k to every value of the list and return the new list in the same order.\n'
               "    >>> add_offsets([1, 2], 3)\n    [4, 5]\n    "),
    "seed_1": ("def count_above(values: list, k: int) -> int:\n"
               '    """Count how many values of the list are strictly larger than the threshold k.\n'
               "    >>> count_above([1, 5, 7], 4)\n    2\n    "),
    "seed_2": "I would write a function that adds numbers together.",  # prose: rejected
    "seed_3": None,  # filled below with HumanEval/0's own prompt: a planted benchmark problem
    "seed_4": ("def last_item(values: list, k: int) -> int:\n"
               '    """Return the last item of the list of values; the threshold k is not used at all.\n'
               "    >>> last_item([1, 2], 0)\n    2\n    "),
    "seed_5": ("def product_of(values: list, k: int) -> int:\n"
               '    """Multiply all values of the list together and then multiply the result by k.\n'
               "    >>> product_of([2, 3], 2)\n    12\n    "),
}
SOLUTIONS = {  # entry point -> (greedy, sampled): seed_4 has one right answer among wrong ones
    "add_offsets": ["def add_offsets(values, k):\n    return [v + k for v in values]\n"] * 2,
    "count_above": ["def count_above(values, k):\n    return sum(1 for v in values if v > k)\n",
                    "def count_above(values, k):\n    return len([v for v in values if v > k])\n"],
    "last_item": ["def last_item(values, k):\n    return values[0]\n",
                  "def last_item(values, k):\n    return values[-1]\n"],
    "product_of": ["def product_of(values, k):\n    out = k\n    for v in values:\n        out *= v\n    return out\n",
                   "def product_of(values, k):\n    import math\n    return math.prod(values) * k\n"],
    "has_close_elements": ["def has_close_elements(numbers, threshold):\n    return False\n"] * 2,
}
TESTS = {
    "add_offsets": "[1], 1) == [2]\n    assert candidate([], 5) == []\n    assert candidate([0, 1], -1) == [-1, 0]\n",
    "count_above": "[], 0) == 0\n    assert candidate([3, 4], 3) == 1\n    assert count_above([9], 1) == 1\n",
    "last_item": "[5, 6], 1) == 6\n    assert candidate([1, 2, 3], 0) == 3\n",
    "product_of": "[1, 2], 3) == 6\n    assert candidate([5], 1) == 5\n",
    "has_close_elements": "[1.0, 2.0], 0.5) == False\n",
}


class ScriptedWriter:
    """Answers each kind of prompt from the tables above, and records what it was asked."""

    name = "scripted"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def generate(self, prompts, params, progress=None):
        out = []
        for p in prompts:
            user = p.messages[-1][1]
            if p.response_prefix == sg.PROBLEM_PREFIX:
                name = next(n for n in PROBLEMS if f"{n}(" in user)  # the seed, as code or as a summary
                self.calls.append(("problem", name))
                text = PROBLEMS[name]
                out.append([Completion(text, 40, "stop")])
                continue
            entry = next(n for n in SOLUTIONS if f"def {n}(" in user)
            if p.response_prefix == sg.TESTS_PREFIX:
                self.calls.append(("tests", entry))
                out.append([Completion(TESTS[entry] + "```", 30, "stop")])
            else:
                assert p.response_prefix == RESPONSE_PREFIX  # the benchmark's own prompt
                self.calls.append(("solution", entry))
                greedy, sampled = SOLUTIONS[entry]
                texts = [greedy] if params.temperature == 0 else [sampled, *[greedy] * (params.n - 1)]
                out.append([Completion(t + "```", 20, "stop") for t in texts])
        return out


@pytest.fixture(scope="module")
def humaneval0():
    return load_humaneval()[0]


@pytest.fixture
def records(humaneval0):
    PROBLEMS["seed_3"] = humaneval0["prompt"]
    return extract_functions(SEED_SRC, "lib.py", "lib")


def _cfg(tmp_path, **kw) -> SelfGenConfig:
    return from_dict(SelfGenConfig, {"out": str(tmp_path / "sg"), "n_seeds": 6, "n_samples": 3, "batch_size": 2,
                                     "decontaminate": ["humaneval"], "heldout_fraction": 0.3, **kw})


def test_pipeline_writes_the_record_format(tmp_path, records):
    writer = ScriptedWriter()
    report = run_selfgen(_cfg(tmp_path), lambda: writer, records=records)
    out = tmp_path / "sg"
    train = read_jsonl(out / "train.jsonl")
    held = load_problem_file(out / "heldout.problems.jsonl") if report["counts"]["heldout"] else []
    kept = {r["problem"]["entry_point"] for r in train} | {p["entry_point"] for p in held}
    # last_item: only one of four samples is right, no agreement; seed_2 is prose; seed_3 is HumanEval/0
    assert kept == {"add_offsets", "count_above", "product_of"}
    rec = train[0]
    assert set(rec) == {"id", "task", "source", "problem", "target", "meta"}
    assert rec["id"].startswith("selfgen:") and rec["task"] == "code" and rec["source"] == "selfgen"
    assert set(rec["problem"]) == {"task_id", "prompt", "entry_point", "test"}
    assert rec["problem"]["task_id"].startswith("selfgen/")
    assert rec["problem"]["test"].startswith("def check(candidate):\n    assert candidate(")
    assert rec["target"].startswith(rec["problem"]["prompt"]) and "```" not in rec["target"]
    assert set(rec["meta"]) >= {"seed_function", "n_samples", "n_agree", "n_tests", "writer"}
    assert rec["meta"]["seed_function"].startswith("lib.seed_") and rec["meta"]["writer"] == "qwen2.5-coder-0.5b-instruct"
    assert rec["meta"]["n_samples"] == 4 and rec["meta"]["n_agree"] >= 2
    counts = report["counts"]
    assert counts["problems_written"] == 6 and counts["problems_parsed"] == 5 and counts["problems_kept"] == 3
    assert counts["solutions_sampled"] == 4 * 4 and report["pass_rate"] == pytest.approx(3 / 5)
    assert set(report["wall_s"]) == {"problems", "solutions", "tests", "verified"}
    # every written record passes its own test in the sandbox, as written
    with Sandbox() as box:
        for r in train:
            assert box.run(f"{r['target']}\n{r['problem']['test']}\ncheck({r['problem']['entry_point']})").passed
        for p in held:
            assert box.run(build_program(p, p["canonical_solution"])).passed
    # the count check: 'count_above([9], 1)' was rewritten to call candidate
    count = next(r for r in [*train, *held] if (r.get("problem") or r)["entry_point"] == "count_above")
    assert "count_above(" not in (count.get("problem") or count)["test"]


def test_a_planted_benchmark_problem_is_dropped_and_counted(tmp_path, records):
    report = run_selfgen(_cfg(tmp_path), lambda: ScriptedWriter(), records=records)
    assert report["decontamination_drops"] in ({"contaminated:humaneval": 1}, {"signature:humaneval": 1})
    texts = (tmp_path / "sg" / "train.jsonl").read_text() + (tmp_path / "sg" / "heldout.problems.jsonl").read_text()
    assert "has_close_elements" not in texts


def test_heldout_and_train_are_disjoint_and_cover_every_kept_problem(tmp_path, records):
    run_selfgen(_cfg(tmp_path, heldout_fraction=0.5), lambda: ScriptedWriter(), records=records)
    train = read_jsonl(tmp_path / "sg" / "train.jsonl")
    held = read_jsonl(tmp_path / "sg" / "heldout.problems.jsonl") if (tmp_path / "sg" / "heldout.problems.jsonl").stat().st_size else []
    train_ids = {r["problem"]["task_id"] for r in train}
    held_ids = {p["task_id"] for p in held}
    assert not train_ids & held_ids and len(train_ids | held_ids) == 3
    assert not {r["problem"]["prompt"] for r in train} & {p["prompt"] for p in held}


def test_split_holds_out_a_seeded_share_in_humaneval_format():
    kept = [sg.Kept(f"m.f{i}", f"def f{i}(x):\n    \"\"\"Doc {i}.\"\"\"\n", f"f{i}", ["assert candidate(1) == 1"],
                    f"def f{i}(x):\n    return x\n", "    return x\n", 5, 3, "w") for i in range(200)]
    train, held = sg.split_kept(kept, 0.15, seed=0)
    assert 15 <= len(held) <= 45 and len(train) + len(held) == 200
    assert not {r["problem"]["task_id"] for r in train} & {p["task_id"] for p in held}
    assert set(held[0]) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    assert held[0]["test"] == "def check(candidate):\n    assert candidate(1) == 1\n"
    assert sg.split_kept(kept, 0.15, seed=0) == (train, held) and sg.split_kept(kept, 0.15, seed=1)[1] != held


def test_a_resumed_run_skips_seeds_already_done(tmp_path, records):
    first = ScriptedWriter()
    run_selfgen(_cfg(tmp_path, n_seeds=2), lambda: first, records=records)
    done = {n for kind, n in first.calls if kind == "problem"}
    assert len(done) == 2
    second = ScriptedWriter()
    report = run_selfgen(_cfg(tmp_path), lambda: second, records=records)
    asked = [n for kind, n in second.calls if kind == "problem"]
    assert len(asked) == 4 and not set(asked) & done
    assert report["counts"]["problems_written"] == 6
    # a finished run loads no model at all
    assert run_selfgen(_cfg(tmp_path), None, records=records)["counts"]["problems_kept"] == 3


def test_a_torn_stage_line_is_redone(tmp_path, records):
    run_selfgen(_cfg(tmp_path), lambda: ScriptedWriter(), records=records)
    stage = tmp_path / "sg" / "verified.jsonl"
    lines = stage.read_text().splitlines(keepends=True)
    stage.write_text("".join(lines[:-1]) + lines[-1][:15])  # killed in the middle of the last write
    again = ScriptedWriter()
    report = run_selfgen(_cfg(tmp_path), lambda: again, records=records)
    assert again.calls == []  # the model is not asked again: only the torn verification is redone
    assert len(read_jsonl(stage)) == len(lines) and report["counts"]["problems_kept"] == 3


def test_cut_runaway_keeps_the_complete_examples_of_a_docstring_cut_at_the_token_limit():
    head = STUB.split("    >>>")[0]
    runaway = head + "    >>> running_max([1, 3, 2, 5])\n    [1, 3, 3, 5]\n    >>> running_max([4, 1])\n    [4, 4]\n    >>> runn"
    p = sg.parse_problem(sg.cut_runaway(runaway))
    assert isinstance(p, sg.ParsedProblem) and p.n_examples == 2 and p.prompt.endswith('    [4, 4]\n    """\n')
    assert sg.cut_runaway(head + "    >>> running_max([1, 3, 2, 5])\n    [1, 3") is None  # no output line is whole
    assert sg.cut_runaway(head + "    Return") is None


def test_a_stub_cut_off_at_the_token_limit_keeps_its_complete_examples_or_is_dropped(tmp_path, records):
    class Runaway(ScriptedWriter):
        def __init__(self, cut):
            super().__init__()
            self.cut = cut

        def generate(self, prompts, params, progress=None):
            out = super().generate(prompts, params, progress)
            if prompts[0].response_prefix == sg.PROBLEM_PREFIX:  # examples without end, cut mid-docstring
                out = [[Completion(self.cut(c[0].text), params.max_new_tokens, "length")] for c in out]
            return out

    no_example = Runaway(lambda text: text.split(">>>")[0] + ">>> ")
    report = run_selfgen(_cfg(tmp_path / "a", n_seeds=3), lambda: no_example, records=records)
    assert report["problem_rejections"] == {"too long": 3} and report["counts"]["solutions_sampled"] == 0
    more = Runaway(lambda text: text.split('"""\n')[0] + "\n    >>> again(")  # the examples go on, cut mid-call
    report = run_selfgen(_cfg(tmp_path / "b", n_seeds=3), lambda: more, records=records)
    assert report["problem_rejections"] == {"ok": 2, "too long": 1}  # seed_2's prose has no example to keep
    plain = run_selfgen(_cfg(tmp_path / "c", n_seeds=3), lambda: ScriptedWriter(), records=records)
    assert report["counts"]["problems_kept"] == plain["counts"]["problems_kept"] == 1  # as if never cut


def test_a_solution_that_contradicts_the_docstring_example_is_not_kept(tmp_path, records):
    saved = PROBLEMS["seed_0"]
    PROBLEMS["seed_0"] = saved.replace("[4, 5]", "[4, 6]")  # the writer's own example is wrong
    try:
        report = run_selfgen(_cfg(tmp_path), lambda: ScriptedWriter(), records=records)
    finally:
        PROBLEMS["seed_0"] = saved
    assert report["verification"]["docstring example fails"] == 1 and report["counts"]["problems_kept"] == 2


# ------------------------------------------------------------------------------------------ config


def test_config_reports_every_bad_value_at_once():
    with pytest.raises(ConfigError) as err:
        from_dict(SelfGenConfig, {"n_seeds": 0, "heldout_fraction": 1.5, "fewshot": 9, "decontaminate": ["nope"],
                                  "llm_base_url": "localhost:8000"})
    msg = str(err.value)
    for key in ("n_seeds", "heldout_fraction", "fewshot", "decontaminate", "llm_base_url"):
        assert key in msg


def test_shipped_yaml_validates_and_endpoint_becomes_an_openai_model():
    cfg = load_config(SelfGenConfig, ROOT / "configs" / "selfgen-stdlib.yaml")
    assert cfg.writer == "qwen2.5-coder-0.5b-instruct" and cfg.dtype == "bfloat16"
    m = from_dict(SelfGenConfig, {"writer": "qwen", "llm_base_url": "http://localhost:8000/v1"}).model_config()
    assert m.backend == "openai" and m.base_url == "http://localhost:8000/v1" and m.name == "qwen"


def test_cli_unknown_writer_is_one_line(capsys, tmp_path):
    from dorag.cli.main import main

    assert main(["data", "selfgen", "--writer", "no-such-model", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-model" in err[0]
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------- expected values from execution


def test_outputs_select_the_agreeing_group_and_the_writers_values_break_a_wrong_majority():
    stub = [("None", True)] * 3
    first, last = [("1", True), ("4", True), ("7", True)], [("2", True), ("6", True), ("9", True)]
    # three samples return the first item, one the last; no written value: the majority wins
    sel = sg.select_by_outputs([first, first, first, last], stub)
    assert sel.group == [0, 1, 2] and sel.outputs == ["1", "4", "7"] and sel.calls == [0, 1, 2]
    # the writer's tests expect the last item on two inputs: 1 x (1 + 2) beats 3 x (1 + 0)
    sel = sg.select_by_outputs([first, first, first, last, last], stub, written=["2", "6", None])
    assert sel.group == [3, 4] and sel.solution == 3 and sel.outputs == ["2", "6", "9"]
    # unusable inputs (an error, a repr that does not evaluate back, the stub's own output) are left out
    row = [("!TypeError", False), ("<object at 0x1>", False), ("None", True), ("3", True), ("5", True)]
    sel = sg.select_by_outputs([row, row], [("None", True)] * 5)
    assert sel.calls == [3, 4]
    assert sg.select_by_outputs([first, last], stub) == "no agreement"
    assert sg.select_by_outputs([[("0", True)] * 3] * 2, stub) == "constant outputs"
    assert sg.select_by_outputs([[("!ValueError", False)] * 3] * 2, stub) == "every solution fails on every input"


def test_examples_are_rewritten_with_the_outputs_and_unverifiable_ones_dropped():
    prompt = ('def enc(s: bytes) -> bytes:\n    """Encode s.\n    >>> enc(b"hi")\n    b"made up"\n'
              "    >>> enc(b'x',\n    ...     )\n    b'?'\n    >>> enc(b'')\n    b''\n    \"\"\"\n")
    new = sg.rewrite_examples(prompt, "enc", {"candidate(b'hi')": "b'aGk='", "candidate(b'')": "b''"})
    assert new == ('def enc(s: bytes) -> bytes:\n    """Encode s.\n    >>> enc(b"hi")\n    b\'aGk=\'\n'
                   "    >>> enc(b'')\n    b''\n    \"\"\"\n")
    assert sg.rewrite_examples(prompt, "enc", {}) is None
    assert sg.call_of("assert candidate([1], k=2) == [3], 'msg'") == "candidate([1], k=2)"
    assert sg.expected_of("assert candidate(1) is None") == "None" and sg.expected_of("assert f(1) > 2") is None


def test_the_probe_reports_outputs_through_the_sandbox():
    calls = ["candidate([3, 1])", "candidate([])", "candidate(5)", "candidate([object()])"]
    probe = sg.probe_test(calls, "MARK")
    program = "def top(xs):\n    return max(xs) if xs else None\n" + probe + "check(top)\n"
    with Sandbox() as box:
        res = box.run(program)
    rows = sg.read_probe(res.stderr_tail, "MARK", len(calls))
    assert rows[:3] == [("3", True), ("None", True), ("!TypeError", False)]
    assert rows[3][0].startswith("<object object at") and rows[3][1] is False  # no literal: not usable
    assert sg.read_probe("nothing here", "MARK", 2) == [("!died", False)] * 2


WRONG_EXAMPLES = {  # the writer's examples and tests with made-up values, as the 0.5B model writes them
    "add_offsets": ("[1, 2], 3)\n    [40, 50]", "[1], 1) == [7]\n    assert candidate([0, 1], -1) == [9]\n"),
}


def test_executed_mode_keeps_a_problem_whose_written_values_are_wrong(tmp_path, records, monkeypatch):
    monkeypatch.setitem(PROBLEMS, "seed_0", PROBLEMS["seed_0"].replace("[1, 2], 3)\n    [4, 5]", WRONG_EXAMPLES["add_offsets"][0]))
    monkeypatch.setitem(TESTS, "add_offsets", WRONG_EXAMPLES["add_offsets"][1])
    written = run_selfgen(_cfg(tmp_path / "w"), lambda: ScriptedWriter(), records=records)
    texts = "".join((tmp_path / "w" / "sg" / f).read_text() for f in ("train.jsonl", "heldout.problems.jsonl"))
    assert "add_offsets" not in texts and "count_above" in texts  # written mode: every test of add_offsets fails
    report = run_selfgen(_cfg(tmp_path / "e", expected="executed"), lambda: ScriptedWriter(), records=records)
    out = tmp_path / "e" / "sg"
    rows = [*read_jsonl(out / "train.jsonl")]
    held = load_problem_file(out / "heldout.problems.jsonl") if report["counts"]["heldout"] else []
    kept = {r["problem"]["entry_point"]: r["problem"] for r in rows} | {p["entry_point"]: p for p in held}
    # last_item: three samples return the first item, one the last; the writer's tests confirm the last, which
    # then outscores the wrong majority but has no second sample agreeing with it: not kept either way
    assert set(kept) == {"add_offsets", "count_above", "product_of"}
    add = kept["add_offsets"]
    assert ">>> add_offsets([1, 2], 3)\n    [4, 5]" in add["prompt"]  # the example now shows the real output
    assert "candidate([1], 1) == [2]" in add["test"] and "[7]" not in add["test"] and "[9]" not in add["test"]
    assert report["counts"]["problems_kept"] > written["counts"]["problems_kept"]
    with Sandbox() as box:
        for r in rows:
            assert box.run(f"{r['target']}\n{r['problem']['test']}\ncheck({r['problem']['entry_point']})").passed

