"""The ablation plan: hashes that depend on what a unit is, not where it lives; errors reported at once."""

from __future__ import annotations

import pytest

from dorag.core.config import from_dict
from dorag.core.errors import ConfigError
from dorag.experiments.ablate import SIX, AblateConfig, config_hash, plan
from dorag.experiments.profiles import load_profile, profile_names, resolve_ablate_data


def _cfg(**over) -> AblateConfig:
    from dorag.core.config import deep_merge

    return from_dict(AblateConfig, deep_merge(load_profile("quickstart"), over))


def test_hash_ignores_placement_and_key_order():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1, "out": "x", "cache_dir": "/c"}) == config_hash({"a": 1, "out": "y"})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_default_grid_is_six_conditions_by_two_benchmarks():
    p = plan(AblateConfig())
    assert [c.condition for c in p.cells[:6]] == list(SIX) and len(p.cells) == 12
    assert sorted(p.adapters) == ["dora", "lora"] and sorted(p.indexes) == ["stdlib", "unseen-api"]
    assert p.data is not None and p.adapters["dora"].config.peft.method == "dora"
    dora_rag = next(c for c in p.cells if c.condition == "dora_rag" and c.benchmark == "unseen-api")
    assert dora_rag.config.model.merge and dora_rag.config.model.adapter == "dora"
    assert dora_rag.config.rag.index == str(p.indexes["unseen-api"].dir)
    baseline = p.cells[0]
    assert baseline.config.rag.index is None and baseline.config.model.adapters == {}


def test_a_change_touches_only_the_units_that_depend_on_it(tmp_path):
    a = plan(_cfg(out=str(tmp_path / "a")))
    b = plan(_cfg(out=str(tmp_path / "b"), train={"training": {"max_steps": 13}}))
    assert a.adapters["lora"].key != b.adapters["lora"].key  # retrained...
    same = {c.name for c, d in zip(a.cells, b.cells) if c.key == d.key}
    assert same == {"baseline x humaneval", "rag_only x humaneval", "baseline x unseen-api", "rag_only x unseen-api"}
    # ...and where the ablation lives does not matter
    assert [c.key for c in a.cells] == [c.key for c in plan(_cfg(out=str(tmp_path / "elsewhere"))).cells]
    c = plan(_cfg(benchmarks={"humaneval": {"limit": 5}}))
    assert {u.name for u, v in zip(a.cells, c.cells) if u.key != v.key} == {f"{x} x humaneval" for x in SIX}


def test_given_adapter_and_index_paths_skip_training_and_building(tmp_path):
    for name in ("l", "d", "i"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.bin").write_bytes(name.encode())

    def given(root):
        return plan(_cfg(adapters={"lora": {"path": str(root / "l")}, "dora": {"path": str(root / "d")}},
                         indexes={"stdlib": {"path": str(root / "i")}}))

    p = given(tmp_path)
    assert p.data is None and all(u.config is None and u.done() for u in p.adapters.values())
    assert p.indexes["stdlib"].config is None and p.indexes["unseen-api"].config is not None
    lora = next(c for c in p.cells if c.condition == "lora_only")
    assert lora.config.model.adapters == {"lora": str(tmp_path / "l")}
    keys = {c.name: c.key for c in p.cells}

    # reports written beside the files do not count; moving the directories keeps every cell
    (tmp_path / "i" / "leakage-humaneval.json").write_text("{}")
    (tmp_path / "i" / "build.json").write_text('{"build_s": 1.5}')
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("l", "d", "i"):
        (tmp_path / name).rename(moved / name)
    assert {c.name: c.key for c in given(moved).cells} == keys

    # an adapter retrained in place (new bytes, same path) gets new cells; the others keep theirs
    (moved / "l" / "weights.bin").write_bytes(b"retrained")
    changed = {c.name for c in given(moved).cells if keys[c.name] != c.key}
    assert changed == {"lora_only x humaneval", "lora_only x unseen-api", "lora_rag x humaneval", "lora_rag x unseen-api"}

    with pytest.raises(ConfigError, match="adapters.dora.path: .* is not a directory"):
        given(tmp_path)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        plan(from_dict(AblateConfig, {"conditions": {"x": {"adapter": "nope", "rag": True, "index": "gone"}},
                                      "train": {"training": {"max_stepz": 3}}}))
    msg = str(err.value)
    assert "nope" in msg and "gone" in msg
    with pytest.raises(ConfigError, match="max_stepz"):
        plan(from_dict(AblateConfig, {"conditions": {"x": {"adapter": "lora"}}, "train": {"training": {"max_stepz": 3}}}))


def test_profiles_and_extra_conditions():
    assert {"quickstart", "full"} <= set(profile_names())
    data = resolve_ablate_data({"profile": "quickstart", "extra_conditions": {"k1": {"rag": True, "top_k": 1}}})
    cfg = from_dict(AblateConfig, data)
    assert list(cfg.conditions) == [*SIX, "k1"] and cfg.benchmarks["humaneval"].limit == 16
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("nope")


def test_a_condition_can_run_on_some_benchmarks_only(tmp_path):
    extra = {"rag_dense": {"rag": True, "index": "ua-dense", "benchmarks": ["unseen-api"]}}
    cfg = _cfg(out=str(tmp_path), indexes={"ua-dense": {"build": {"sources": ["unseen-api"], "index": {"method": "dense"}}}},
               conditions=extra)
    p = plan(cfg)
    assert [(c.condition, c.benchmark) for c in p.cells] == [("rag_dense", "unseen-api")]
    assert sorted(p.indexes) == ["ua-dense"]  # the stdlib index is not built: nothing retrieves from it
    with pytest.raises(ConfigError, match=r"conditions.rag_dense.benchmarks: mbpp not under benchmarks \(humaneval, unseen-api\)"):
        _cfg(conditions={"rag_dense": {"rag": True, "benchmarks": ["mbpp"]}})


def test_the_mixed_recipe_reads_the_rag_index_and_trains_with_the_cells_prompt(tmp_path):
    p = plan(_cfg(out=str(tmp_path)))
    assert p.data.config.task == "mixture" and p.data.config.index == str(p.indexes["stdlib"].dir)
    assert p.data.config.grounded.budget_tokens == 512 and p.data.config.tokenizer == "qwen2.5-coder-0.5b-instruct"
    lora = p.adapters["lora"].config
    assert lora.rag.budget_tokens == 512 and lora.prompt.instruction == p.cells[0].config.prompt.instruction
    rebuilt = plan(_cfg(out=str(tmp_path), indexes={"stdlib": {"build": {"sources": ["stdlib"], "index": {"method": "bm25", "bm25_k1": 1.2}}}}))
    assert rebuilt.data.key != p.data.key and rebuilt.adapters["lora"].key != p.adapters["lora"].key  # data follows its index
    with pytest.raises(ConfigError, match=r"data_index: data.task mixture \(adapter dora\) retrieves its documents from an index"):
        plan(_cfg(out=str(tmp_path), data_index=None))


def test_the_full_profile_keeps_the_old_recipe_as_its_own_adapter_and_data(tmp_path):
    from dorag.core.config import deep_merge

    p = plan(from_dict(AblateConfig, deep_merge(load_profile("full"), {"out": str(tmp_path)})))
    assert {c.benchmark for c in p.cells} == {"humaneval", "unseen-api", "unseen-api-shift"}
    assert {c.condition for c in p.cells} == {*SIX, "dora_legacy_only", "dora_legacy_rag"} and len(p.cells) == 24
    new, old = p.adapter_data["dora"], p.adapter_data["dora_legacy"]
    assert new is p.data and new.config.task == "mixture" and new.config.limit == 600
    assert old.config.task == "code-legacy" and old.config.limit is None and old.dir != new.dir
    assert p.adapters["dora_legacy"].config.data.train == str(old.config.out)
    assert p.adapters["dora_legacy"].config.training.max_seq_len == 512
    assert p.adapters["lora"].config.data.train == str(new.config.out)
    assert len(p.datas) == 2
