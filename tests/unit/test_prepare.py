"""`dorag data prepare`: pairs from source, decontamination against HumanEval, stable held-out split."""

from __future__ import annotations

import json
import textwrap

import pytest

from dorag.core.config import from_dict
from dorag.core.errors import DataError
from dorag.core.io import read_jsonl
from dorag.data.decontam import Decontaminator
from dorag.evaluation.benchmarks import load_problems
from dorag.experiments.prepare import PrepareConfig, prepare


def _write_pkg(tmp_path, n=30):
    pkg = tmp_path / "src"
    pkg.mkdir()
    funcs = [f'def helper_{i}(values, k={i}):\n    """Scale every value by the constant {i} and return a new list."""\n'
             f"    return [v * k + {i} for v in values]\n" for i in range(n)]
    he = load_problems("humaneval", limit=1)[0]  # has_close_elements, copied verbatim: must be dropped
    funcs.append(he["prompt"].split("from typing import List\n\n\n")[-1] + he["canonical_solution"])
    (pkg / "mod.py").write_text("from typing import List\n\n\n" + "\n\n".join(funcs))
    return pkg


def test_prepare_code_pairs_drops_benchmark_overlap_and_splits(tmp_path):
    pkg = _write_pkg(tmp_path)
    cfg = from_dict(PrepareConfig, {"task": "code", "sources": [str(pkg)], "out": str(tmp_path / "d" / "code.jsonl"),
                                    "eval_fraction": 0.2})
    rep = prepare(cfg)
    train, held = read_jsonl(rep.train), read_jsonl(rep.eval)
    assert rep.dropped["contaminated:humaneval"] == 1
    assert rep.n_train + rep.n_eval == 30 and rep.n_eval > 0
    assert not {e["id"] for e in train} & {e["id"] for e in held}
    ex = train[0]
    # problem form: the benchmark-format stub, and the complete function as the target
    assert ex["problem"]["prompt"].startswith("def helper_") and '"""Scale every value' in ex["problem"]["prompt"]
    assert ex["target"].startswith(ex["problem"]["prompt"]) and "return [v * k" in ex["target"]
    assert "return [v * k" not in ex["problem"]["prompt"]
    report = json.loads((tmp_path / "d" / "code.report.json").read_text())
    assert report["n_train"] == rep.n_train
    again = prepare(cfg)  # the split is a hash of ids: stable across runs
    assert [e["id"] for e in read_jsonl(again.eval)] == [e["id"] for e in held]


def test_prepare_docstring_pairs_target_the_docstring(tmp_path):
    pkg = _write_pkg(tmp_path, n=5)
    rep = prepare(from_dict(PrepareConfig, {"task": "docstring", "sources": [str(pkg)],
                                            "out": str(tmp_path / "doc.jsonl"), "eval_fraction": 0.0}))
    ex = read_jsonl(rep.train)[0]
    assert ex["task"] == "docstring" and ex["messages"][1]["content"].startswith("Scale every value")
    assert '"""' not in ex["messages"][0]["content"].split("```python")[1]


def test_empty_source_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty dataset"):
        prepare(from_dict(PrepareConfig, {"sources": [str(tmp_path / "empty")], "out": str(tmp_path / "x.jsonl")}))


def test_decontaminator_ngram_and_short_exact():
    d = Decontaminator(n=5).add(["def f(x):\n    return sorted(set(x)) + [len(x)]", "short one"])
    assert d.contaminated("y = 1\nreturn sorted(set(x)) + [len(x)]")
    assert not d.contaminated("return sorted(x) + [1, 2, 3, 4]")
    assert d.contaminated("Short  ONE") and not d.contaminated("short two")


def test_code_legacy_keeps_the_old_instruction_format(tmp_path):
    pkg = _write_pkg(tmp_path, n=3)
    rep = prepare(from_dict(PrepareConfig, {"task": "code-legacy", "sources": [str(pkg)],
                                            "out": str(tmp_path / "old.jsonl"), "eval_fraction": 0.0}))
    ex = read_jsonl(rep.train)[0]
    assert ex["messages"][0]["content"].startswith("Implement the following Python function.")
    assert ex["messages"][1]["content"].startswith("```python\ndef helper_")


def test_mbpp_train_split_becomes_code_pairs(tmp_path):
    import json as _json

    src = tmp_path / "mbpp.jsonl"
    rec = {"text": "Write a function to add two numbers.", "code": "def add(a, b):\r\n  return a + b",
           "task_id": 601, "test_setup_code": "", "test_list": ["assert add(1, 2) == 3"], "challenge_test_list": []}
    src.write_text(_json.dumps(rec) + "\n" + _json.dumps({**rec, "task_id": 11}) + "\n")
    rep = prepare(from_dict(PrepareConfig, {"sources": [f"mbpp:{src}"], "out": str(tmp_path / "m.jsonl"),
                                            "eval_fraction": 0.0}))
    rows = read_jsonl(rep.train)
    assert [r["id"] for r in rows] == ["mbpp:Mbpp/601"]  # the test-split task 11 is not training data
    assert "assert add(1, 2) == 3" in rows[0]["problem"]["prompt"]
    assert rows[0]["target"] == "def add(a, b):\n  return a + b\n"


def test_unknown_source_and_missing_adapter_are_clear():
    from dorag.core.errors import ModelError
    from dorag.models.adapters import resolve_adapter

    with pytest.raises(DataError, match="is not stdlib, package:NAME, mbpp"):
        prepare(from_dict(PrepareConfig, {"sources": ["nowhere-xyz"], "out": "/tmp/never.jsonl"}))
    with pytest.raises(ModelError, match="not a PEFT adapter directory|does not exist|no adapter_config"):
        from dorag.models.adapters import check_adapter_dir

        check_adapter_dir(resolve_adapter("/tmp/definitely-missing-adapter"))


def test_hub_adapter_offline_is_one_error_without_a_download_attempt(monkeypatch):
    import huggingface_hub

    import dorag.models.loading as loading
    from dorag.core.errors import ModelError
    from dorag.models.adapters import resolve_adapter

    def download(*args, **kwargs):  # what would sit through the Hub's retries and timeouts
        raise AssertionError("snapshot_download was called while the Hub is unreachable")

    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    with pytest.raises(ModelError, match="Hugging Face Hub is unreachable"):
        resolve_adapter("someone/code-lora")


def _grounded_lib(tmp_path):
    from tests.unit.test_docgrounded import LIB

    root = tmp_path / "lib"
    root.mkdir()
    for name, text in LIB.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


def test_prepare_doc_grounded_and_mixture_write_problem_form_examples(tmp_path):
    from dorag.data.sft_data import make_problem_example
    from dorag.core.io import write_jsonl

    lib = _grounded_lib(tmp_path)
    rep = prepare(from_dict(PrepareConfig, {"task": "doc-grounded", "sources": [str(lib)], "out": str(tmp_path / "g.jsonl"),
                                            "decontaminate": ["offline"], "grounded": {"min_words": 3, "heldout_modules": 0.0}}))
    rows = read_jsonl(rep.train)
    assert rows and all(r["source"] == "doc-grounded" and r["docs"] for r in rows)
    report = json.loads((tmp_path / "g.report.json").read_text())
    assert "humaneval" in report["doc_grounded"]["decontaminated_against"]
    assert "unseen-api" in report["doc_grounded"]["decontaminated_against"]
    he = load_problems("humaneval", limit=2)
    plain = tmp_path / "plain.jsonl"
    write_jsonl(plain, [make_problem_example(f"p{i}", {"task_id": f"t{i}", "prompt": f"def f{i}(x):\n    \"\"\"Return x plus {i} for every x given.\"\"\"\n",
                                                        "entry_point": f"f{i}"}, f"def f{i}(x):\n    return x + {i}\n")
                        for i in range(40)]
                + [make_problem_example("leak", he[0], he[0]["prompt"] + he[0]["canonical_solution"])])
    mixed = prepare(from_dict(PrepareConfig, {"task": "mixture", "sources": [str(lib)], "out": str(tmp_path / "m.jsonl"),
                                              "no_docs_sources": [str(plain)], "mix": {"no-docs": 0.5, "oracle": 0.5},
                                              "eval_fraction": 0.0, "limit": 8,
                                              "grounded": {"min_words": 3, "heldout_modules": 0.0}}))
    rows = read_jsonl(mixed.train)
    kinds = json.loads((tmp_path / "m.report.json").read_text())["mixture"]["train"]
    assert kinds["no-docs"] == 4 and kinds["oracle"] == 4 and kinds["distractors"] == 0 and len(rows) == 8
    assert mixed.dropped["no-docs:contaminated:humaneval"] == 1  # the planted HumanEval solution
    assert "leak" not in {r["id"] for r in rows}
    assert "short" not in json.loads((tmp_path / "m.report.json").read_text())["mixture"]
    # a pool too small for its share is said, with the counts and the fix, not padded
    said: list[str] = []
    prepare(from_dict(PrepareConfig, {"task": "mixture", "sources": [str(lib)], "out": str(tmp_path / "s.jsonl"),
                                      "no_docs_sources": [str(plain)], "mix": {"no-docs": 0.9, "oracle": 0.1},
                                      "eval_fraction": 0.0, "limit": 60,
                                      "grounded": {"min_words": 3, "heldout_modules": 0.0}}), progress=said.append)
    short = json.loads((tmp_path / "s.report.json").read_text())["mixture"]["short"]
    assert short["no-docs"] == [40, 54]  # (the tiny library has only 4 oracle examples as well)
    assert any(m.startswith("warning: the mixture has 40 no-docs examples of the 54") and "dorag data selfgen" in m
               for m in said)


def test_mixture_shortfall():
    from dorag.experiments.grounded_data import mixture_shortfall

    shares = {"no-docs": 0.4, "oracle": 0.48, "distractors": 0.12}
    assert mixture_shortfall({"no-docs": 57, "oracle": 288, "distractors": 72}, shares, 600) == {"no-docs": (57, 240)}
    assert mixture_shortfall({"no-docs": 230, "oracle": 288, "distractors": 72}, shares, 600) == {}  # within 5%
    assert mixture_shortfall({"no-docs": 1}, shares, None) == {}


def test_mixture_needs_problem_form_and_known_shares(tmp_path):
    from dorag.core.errors import ConfigError

    with pytest.raises(ConfigError, match="mix: give non-negative shares"):
        from_dict(PrepareConfig, {"task": "mixture", "mix": {"plain": 1.0}})
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n")
    with pytest.raises(DataError, match="not in problem form"):
        prepare(from_dict(PrepareConfig, {"task": "mixture", "sources": [str(_grounded_lib(tmp_path))],
                                          "out": str(tmp_path / "m.jsonl"), "no_docs_sources": [str(legacy)],
                                          "decontaminate": [], "grounded": {"min_words": 3}}))


def test_problem_form_records_are_validated_on_load(tmp_path):
    from dorag.data.sft_data import load_examples

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": {"task_id": "t", "prompt": "def f():\n"}, "target": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: problem is missing field\(s\) entry_point"):
        load_examples(bad)


def test_decontaminate_names_are_checked_and_offline_means_every_loadable_benchmark(tmp_path):
    from dorag.core.errors import ConfigError
    from dorag.experiments.prepare import Benchmarks

    with pytest.raises(ConfigError, match="decontaminate: unknown benchmark"):
        from_dict(PrepareConfig, {"decontaminate": ["humaneva"]})
    names = Benchmarks.load(("offline", "humaneval")).names
    assert {"humaneval", "unseen-api", "unseen-api-shift"} <= set(names) and len(names) == len(set(names))
    assert "mbpp" not in names  # needs its file: not offline
    pkg = _write_pkg(tmp_path, n=6)
    rep = prepare(from_dict(PrepareConfig, {"sources": [str(pkg)], "out": str(tmp_path / "o.jsonl"),
                                            "decontaminate": ["offline"], "eval_fraction": 0.0}))
    assert rep.dropped["contaminated:humaneval"] == 1 and "contaminated:unseen-api" in rep.dropped
