"""The publishing gate: regressions beyond tolerance fail, within pass, --promote only on a pass."""

from __future__ import annotations

import json

import pytest

from dorag.cli.main import main
from dorag.core.errors import ConfigError
from dorag.experiments.gate import Rule, evaluate_gate, flatten


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_rules_by_hand():
    rules = {"acc": Rule(tolerance=0.02), "time": Rule(higher_is_better=False, relative=0.10)}
    rows = {r.metric: r for r in evaluate_gate({"acc": 0.50, "time": 105}, {"acc": 0.515, "time": 100}, rules)}
    assert rows["acc"].status == "ok" and rows["time"].status == "ok"  # -0.015 <= 0.02; +5 <= 10
    rows = {r.metric: r for r in evaluate_gate({"acc": 0.49, "time": 111}, {"acc": 0.515, "time": 100}, rules)}
    assert rows["acc"].status == "regressed" and rows["time"].status == "regressed"
    assert rows["acc"].delta == pytest.approx(-0.025) and rows["time"].allowed == pytest.approx(10.0)
    rows = evaluate_gate({"acc": 0.6}, {"acc": 0.5, "time": 1}, rules)
    assert [r.status for r in rows] == ["improved", "missing"]
    assert flatten({"pass@1": {"value": 0.5, "ci": [0.1, 0.9]}, "n": 3, "ok": True}) == {"pass@1.value": 0.5, "n": 3.0}


@pytest.fixture()
def files(tmp_path):
    cfg = tmp_path / "gate.yaml"
    cfg.write_text("rules:\n  pass@1.value:\n    tolerance: 0.02\n")
    base = write(tmp_path / "base.json", {"pass@1": {"value": 0.55}})
    return tmp_path, cfg, base


def run(capsys, *args):
    code = main([str(a) for a in args])
    return code, *capsys.readouterr()


def test_exit_code_and_promote(capsys, files):
    tmp, cfg, base = files
    within = write(tmp / "within.json", {"pass@1": {"value": 0.54}})
    beyond = write(tmp / "beyond.json", {"pass@1": {"value": 0.50}})
    code, out, _ = run(capsys, "gate", beyond, "--baseline", base, "-c", cfg, "--promote")
    assert code == 3 and "regressed" in out and "baseline left unchanged" in out
    assert json.loads(base.read_text()) == {"pass@1": {"value": 0.55}}  # a failing gate promotes nothing
    code, out, _ = run(capsys, "gate", within, "--baseline", base, "-c", cfg)
    assert code == 0 and "gate: PASS" in out
    assert json.loads(base.read_text()) == {"pass@1": {"value": 0.55}}  # no --promote: untouched
    code, out, _ = run(capsys, "gate", within, "--baseline", base, "-c", cfg, "--promote")
    assert code == 0 and "promoted" in out and json.loads(base.read_text()) == {"pass@1": {"value": 0.54}}


def test_first_baseline_and_bad_input(capsys, files):
    tmp, cfg, _ = files
    new = write(tmp / "new.json", {"pass@1": {"value": 0.4}})
    code, _, err = run(capsys, "gate", new, "--baseline", tmp / "none.json", "-c", cfg)
    assert code == 1 and "baseline not found; create it with --promote" in err
    code, out, _ = run(capsys, "gate", new, "--baseline", tmp / "none.json", "-c", cfg, "--promote")
    assert code == 0 and (tmp / "none.json").is_file() and "new" in out
    code, _, err = run(capsys, "gate", new, "--baseline", tmp / "none.json", "--set", "rules.typo.tolerance=1")
    assert code == 1 and "appear in neither file" in err
    with pytest.raises(ConfigError, match="rules: name at least one metric"):
        from dorag.core.config import from_dict
        from dorag.experiments.gate import GateConfig

        from_dict(GateConfig, {})


def test_pattern_rules_cover_every_matching_metric_and_exact_names_win():
    cur = {"he.dora_rag.pass@1": 0.40, "ua.dora_rag.pass@1": 0.30, "he.baseline.pass@1": 0.10}
    base = {"he.dora_rag.pass@1": 0.45, "ua.dora_rag.pass@1": 0.30, "he.baseline.pass@1": 0.50}
    rules = {"*.dora_rag.pass@1": Rule(tolerance=0.02), "he.dora_rag.pass@1": Rule(tolerance=0.10)}
    rows = {r.metric: r for r in evaluate_gate(cur, base, rules)}
    assert set(rows) == {"he.dora_rag.pass@1", "ua.dora_rag.pass@1"}  # baseline is not gated
    assert rows["he.dora_rag.pass@1"].status == "ok" and rows["he.dora_rag.pass@1"].allowed == pytest.approx(0.10)
    assert rows["ua.dora_rag.pass@1"].status == "ok"
    rows = evaluate_gate({**cur, "ua.dora_rag.pass@1": 0.2}, base, rules)
    assert [r.status for r in rows if r.metric.startswith("ua")] == ["regressed"]
