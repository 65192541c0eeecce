from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from dorag.core.config import describe, dump_yaml, from_dict, load_config, load_yaml, option, parse_overrides, to_dict
from dorag.core.errors import ConfigError


@dataclass
class Peft:
    r: int = option(16, "rank")
    alpha: float = option(32.0, "scale numerator")
    method: Literal["lora", "dora"] = option("lora", "adapter type")
    targets: tuple[str, ...] = option(("q_proj",), "modules")

    def check(self) -> list[str]:
        return [f"r: must be positive, got {self.r}"] if self.r <= 0 else []


@dataclass
class Run:
    name: str = option("x", "run name")
    limit: int | None = option(None, "cap")
    debug: bool = option(False, "debug")
    peft: Peft = field(default_factory=Peft)


def test_overrides_parse_yaml_scalars_into_nested_dicts():
    assert parse_overrides(["peft.r=32", "peft.method=dora", "debug=true", "limit=null", "name=a=b"]) == {
        "peft": {"r": 32, "method": "dora"}, "debug": True, "limit": None, "name": "a=b"}


@pytest.mark.parametrize("bad", ["noequals", "=1", "a..b=1"])
def test_malformed_override_is_an_error(bad):
    with pytest.raises(ConfigError, match="key.subkey=value"):
        parse_overrides([bad])


def test_precedence_defaults_then_yaml_then_overrides(tmp_path: Path):
    y = tmp_path / "c.yaml"
    y.write_text("name: from-yaml\npeft:\n  r: 8\n  alpha: 4\n")
    cfg = load_config(Run, y, ["peft.r=64"])
    assert (cfg.name, cfg.peft.r, cfg.peft.alpha, cfg.peft.method) == ("from-yaml", 64, 4.0, "lora")


def test_unknown_key_names_the_key_valid_choices_and_a_suggestion():
    with pytest.raises(ConfigError) as exc:
        from_dict(Run, {"peft": {"rr": 3}})
    msg = str(exc.value)
    assert "unknown key peft.rr" in msg and "did you mean peft.r?" in msg and "alpha, method, r, targets" in msg


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        from_dict(Run, {"foo": 1, "limit": "many", "debug": "yes", "peft": {"method": "ia3", "r": 0}})
    msg = str(exc.value)
    assert "5 problems" in msg
    for part in ("unknown key foo", "limit: expected", "debug: expected true or false",
                 "peft.method: invalid value 'ia3'; choose one of: lora, dora", "peft.r: must be positive"):
        assert part in msg, part


def test_types_are_coerced_where_unambiguous():
    cfg = from_dict(Run, {"peft": {"alpha": 8, "targets": "q_proj,v_proj"}, "limit": 5})
    assert cfg.peft.alpha == 8.0 and isinstance(cfg.peft.alpha, float)
    assert cfg.peft.targets == ("q_proj", "v_proj")
    assert cfg.limit == 5


@pytest.mark.parametrize("written", ["2e-4", "2E-4", "+2e-4", "0.0002", ".0002", "2.0e-4"])
def test_numbers_are_read_as_a_user_writes_them(tmp_path: Path, written):
    # YAML 1.1 reads `2e-4` (no dot) as a string, in an override and in a file alike
    assert from_dict(Peft, parse_overrides([f"alpha={written}"])).alpha == pytest.approx(2e-4)
    (tmp_path / "c.yaml").write_text(f"peft:\n  alpha: {written}\n")
    assert load_config(Run, tmp_path / "c.yaml").peft.alpha == pytest.approx(2e-4)


def test_a_value_that_does_not_parse_is_one_problem_not_two():
    with pytest.raises(ConfigError) as err:
        from_dict(Peft, parse_overrides(["r=abc"]))
    # not followed by the cross-field rule's "must be positive, got 0" about the placeholder
    assert str(err.value) == "invalid config: r: expected an integer, got 'abc'"
    with pytest.raises(ConfigError, match="r: must be positive, got -1"):
        from_dict(Peft, {"r": -1})
    with pytest.raises(ConfigError, match="expected a number, got 'inf-ish'"):
        from_dict(Peft, {"alpha": "inf-ish"})


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError, match="peft.r: expected an integer"):
        from_dict(Run, {"peft": {"r": True}})


def test_round_trip_through_yaml(tmp_path: Path):
    cfg = from_dict(Run, {"name": "rt", "peft": {"r": 4, "targets": ["a", "b"]}})
    y = tmp_path / "c.yaml"
    y.write_text(dump_yaml(cfg))
    assert load_config(Run, y) == cfg
    assert to_dict(cfg)["peft"]["targets"] == ["a", "b"]


def test_describe_lists_leaf_keys_with_help():
    rows = {key: (typ, default, help_) for key, typ, default, help_ in describe(Run)}
    assert rows["peft.r"] == ("int", 16, "rank")
    assert rows["peft.method"][0] == "{lora,dora}"


def test_yaml_top_level_must_be_a_mapping(tmp_path: Path):
    y = tmp_path / "c.yaml"
    y.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(Run, y)


def test_shipped_configs_validate():
    """Every YAML in configs/ builds its config class without errors (torchtune's rule)."""
    from dorag.experiments.generate import GenerateConfig
    from dorag.experiments.gate import GateConfig
    from dorag.experiments.indexing import IndexBuildConfig
    from dorag.experiments.prepare import PrepareConfig
    from dorag.data.synth import SynthConfig
    from dorag.experiments.selfgen import SelfGenConfig
    from dorag.training.config import TrainConfig
    from dorag.training.retriever_config import RetrieverTrainConfig

    from dorag.experiments.ablate import AblateConfig, plan
    from dorag.experiments.profiles import resolve_ablate_data

    classes = {"generate": GenerateConfig, "train": TrainConfig, "prepare": PrepareConfig, "index": IndexBuildConfig,
               "gate": GateConfig, "ablate": AblateConfig, "synth": SynthConfig, "retriever": RetrieverTrainConfig,
               "selfgen": SelfGenConfig}
    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert len(configs) >= 6
    for path in configs:
        kind = path.stem.split("-")[0]
        assert kind in classes, f"{path.name}: no config class for prefix {kind!r}"
        if kind == "ablate":  # the whole plan resolves: every adapter, index and cell config is valid
            assert plan(from_dict(AblateConfig, resolve_ablate_data(load_yaml(path)))).cells
        else:
            load_config(classes[kind], path)
