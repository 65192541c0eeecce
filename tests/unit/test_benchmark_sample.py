"""Subsets that can show a difference: a seeded sample stratified by level, threaded through generate and ablate."""

from __future__ import annotations

from collections import Counter

import pytest

from dorag.core.errors import DataError
from dorag.evaluation.benchmarks import allocate, load_problems, sample_problems, stratum_field


def _levels(problems: list[dict]) -> Counter:
    return Counter(p["meta"]["difficulty"] for p in problems)


def test_unseen_api_stratified_sample_has_each_level_in_proportion():
    full = load_problems("unseen-api")
    sizes = _levels(full)
    assert stratum_field(full) == "difficulty" and len(full) == sum(sizes.values())
    sample = load_problems("unseen-api", limit=24, sample="stratified")
    # expected counts from the full set: 24 * n / N, rounded by largest remainder
    exact = {k: 24 * n / len(full) for k, n in sizes.items()}
    floor = {k: int(v) for k, v in exact.items()}
    short = 24 - sum(floor.values())
    bumped = sorted(exact, key=lambda k: exact[k] - floor[k], reverse=True)[:short]
    expected = {k: floor[k] + (k in bumped) for k in exact}
    assert _levels(sample) == expected and sum(expected.values()) == 24
    assert expected == {"single": 10, "compose": 9, "multi": 5}  # 38, 32, 19 of 89
    # the first 24 are all single: that subset cannot show how retrieval fares on composed tasks
    assert set(_levels(load_problems("unseen-api", limit=24))) == {"single"}


def test_stratified_sample_is_deterministic_keeps_order_and_changes_with_the_seed():
    full = load_problems("unseen-api")
    order = {p["task_id"]: i for i, p in enumerate(full)}
    a = [p["task_id"] for p in load_problems("unseen-api", limit=24, sample="stratified")]
    assert a == [p["task_id"] for p in load_problems("unseen-api", limit=24, sample="stratified", seed=0)]
    assert [order[t] for t in a] == sorted(order[t] for t in a)  # the benchmark's own order
    # fixed by the hash of seed and task id (not random's or set order): the same on every Python version
    assert a[:4] == ["UnseenAPI/0", "UnseenAPI/11", "UnseenAPI/19", "UnseenAPI/22"]
    other = [p["task_id"] for p in load_problems("unseen-api", limit=24, sample="stratified", seed=1)]
    assert other != a and _levels([full[order[t]] for t in other]) == _levels([full[order[t]] for t in a])


def test_humaneval_sample_is_a_seeded_random_subset_not_the_first_n():
    first = [p["task_id"] for p in load_problems("humaneval", limit=16)]
    assert first == [f"HumanEval/{i}" for i in range(16)]
    sample = [p["task_id"] for p in load_problems("humaneval", limit=16, sample="stratified")]
    assert len(sample) == len(set(sample)) == 16 and sample != first
    assert sample == [p["task_id"] for p in load_problems("humaneval", limit=16, sample="stratified")]
    assert max(int(t.split("/")[1]) for t in sample) > 100  # spread over the set, not a prefix
    assert sample[:3] == ["HumanEval/26", "HumanEval/57", "HumanEval/81"]
    assert sample != [p["task_id"] for p in load_problems("humaneval", limit=16, sample="stratified", seed=3)]


def test_allocation_by_hand():
    # 7 * (5, 3, 2) / 10 = 3.5, 2.1, 1.4 -> floors 3, 2, 1; the one left goes to the largest remainder (0.5)
    assert allocate({"a": 5, "b": 3, "c": 2}, 7) == {"a": 4, "b": 2, "c": 1}
    assert allocate({"a": 2, "b": 3, "c": 5}, 7) == {"a": 1, "b": 2, "c": 4}  # by remainder, not by name
    # a rare stratum still gets one when the sample has room for every stratum, taken from the most over-served
    assert allocate({"big": 100, "rare": 1, "odd": 1}, 3) == {"big": 1, "rare": 1, "odd": 1}
    assert allocate({"big": 100, "rare": 1}, 1) == {"big": 1, "rare": 0}  # no room: proportion wins
    assert allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # never more than a stratum holds


def test_sample_edge_cases():
    problems = [{"task_id": f"T/{i}", "meta": {"difficulty": "x" if i < 6 else "y"}} for i in range(8)]
    assert sample_problems(problems, 20, "stratified") == problems  # the limit covers the set: all, in order
    assert [p["task_id"] for p in sample_problems(problems, 3)] == ["T/0", "T/1", "T/2"]
    picked = sample_problems(problems, 4, "stratified")
    assert Counter(p["meta"]["difficulty"] for p in picked) == {"x": 3, "y": 1}
    with pytest.raises(DataError, match="sample must be one of first, stratified"):
        sample_problems(problems, 3, "random")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="limit must be at least 1"):
        load_problems("unseen-api", limit=0, sample="stratified")


def test_generate_config_threads_the_sample(tmp_path):
    from dorag.core.config import from_dict
    from dorag.core.io import read_jsonl
    from dorag.experiments.generate import GenerateConfig, run_generate
    from dorag.models.generator import Completion

    class Fake:
        name, tokenizer = "fake", None

        def generate(self, prompts, params, progress=None):
            return [[Completion(text="    return 1\n", n_tokens=3, finish_reason="stop")] for _ in prompts]

    cfg = from_dict(GenerateConfig, {"benchmark": "unseen-api", "limit": 24, "sample": "stratified",
                                     "out": str(tmp_path / "s.jsonl")})
    run_generate(cfg, Fake())
    written = [r["task_id"] for r in read_jsonl(tmp_path / "s.jsonl")]
    assert written == [p["task_id"] for p in load_problems("unseen-api", limit=24, sample="stratified")]
    with pytest.raises(Exception, match="sample"):
        from_dict(GenerateConfig, {"benchmark": "unseen-api", "sample": "random"})


def test_quickstart_cells_use_the_stratified_sample_and_default_cells_keep_their_hash(tmp_path):
    from dorag.core.config import deep_merge, from_dict
    from dorag.experiments.ablate import AblateConfig, plan
    from dorag.experiments.profiles import load_profile

    quick = plan(from_dict(AblateConfig, deep_merge(load_profile("quickstart"), {"out": str(tmp_path / "q")})))
    assert {c.config.sample for c in quick.cells} == {"stratified"}
    assert {c.config.limit for c in quick.cells if c.benchmark == "unseen-api"} == {16}
    first = plan(from_dict(AblateConfig, deep_merge(load_profile("quickstart"), {
        "out": str(tmp_path / "q"), "benchmarks": {b: {"sample": "first"} for b in ("humaneval", "unseen-api")}})))
    assert {c.config.sample for c in first.cells} == {"first"}
    assert all(c.key != d.key for c, d in zip(quick.cells, first.cells))  # another sample: other cells
    # "first" is the default and stays out of the hash: an ablation planned before the option keeps its cells
    unset = load_profile("quickstart")
    for spec in unset["benchmarks"].values():
        del spec["sample"]
    before = plan(from_dict(AblateConfig, {**unset, "out": str(tmp_path / "q")}))
    assert [c.key for c in before.cells] == [c.key for c in first.cells]


def test_the_default_sample_is_not_hashed(monkeypatch, tmp_path):
    import dorag.experiments.ablate as ablate
    from dorag.core.config import deep_merge, from_dict
    from dorag.experiments.profiles import load_profile

    hashed: list[dict] = []
    real = ablate.config_hash

    def recording(obj):
        if isinstance(obj, dict) and "generate" in obj:
            hashed.append(obj["generate"])
        return real(obj)

    monkeypatch.setattr(ablate, "config_hash", recording)
    profile = load_profile("quickstart")
    ablate.plan(from_dict(ablate.AblateConfig, deep_merge(profile, {"out": str(tmp_path)})))
    assert hashed and all(g["sample"] == "stratified" for g in hashed)
    hashed.clear()
    first = {"out": str(tmp_path), "benchmarks": {b: {"sample": "first"} for b in profile["benchmarks"]}}
    ablate.plan(from_dict(ablate.AblateConfig, deep_merge(profile, first)))
    assert hashed and not any("sample" in g for g in hashed)  # the identity of a cell planned before the option
