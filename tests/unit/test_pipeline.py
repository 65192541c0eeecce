"""dvc.yaml: every stage is a dorag verb with existing inputs, the chain is complete, and the ablate stage's
command resolves to a valid plan (checked through the CLI's --dry-run, no dvc needed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from dorag.cli.main import main

ROOT = Path(__file__).parents[2]


def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _lookup(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def _stages() -> dict[str, str]:
    """stage name -> command, with ${...} interpolated from params.yaml (and foreach items) like dvc does."""
    params = _params()
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        items = stage["foreach"].items() if "foreach" in stage else [(None, None)]
        for key, item in items:
            body = stage["do"] if "foreach" in stage else stage
            ctx = {**params, "key": key, "item": item}
            cmd = re.sub(r"\$\{([^}]+)\}", lambda m: str(_lookup(ctx, m.group(1).strip())), body["cmd"])
            out[f"{name}@{key}" if key else name] = cmd
            for p in body.get("params", []):
                _lookup(params, p)  # every declared param exists
    return out


def test_stages_chain_the_main_job():
    stages = _stages()
    order = ["models", "data", "index", "train@code-lora", "train@code-dora", "train@docstring-lora", "ablate",
             "report", "gate", "publish"]
    assert list(stages) == order
    verbs = {name: {shlex.split(part)[1] for part in re.split(r"&&|>", cmd) if part.strip().startswith("dorag ")}
             for name, cmd in stages.items()}
    assert verbs["ablate"] == {"ablate"} and verbs["gate"] == {"gate"} and verbs["publish"] == {"publish"}
    for name, cmd in stages.items():
        for path in re.findall(r"configs/[\w.-]+\.yaml", cmd):
            assert (ROOT / path).is_file(), f"{name}: {path} is missing"
    # the metrics file dvc compares lives where git tracks it (runs/ is ignored), and the gate reads it
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    metrics = [next(iter(m)) if isinstance(m, dict) else m for m in stage["ablate"]["metrics"]]
    ignored = [line.strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.startswith("/")]
    assert metrics and not any(m.startswith(tuple(ignored)) for m in metrics)
    assert metrics[0] in stages["gate"] and f"cp runs/pipeline/ablation/metrics.json {metrics[0]}" in stages["ablate"]


def test_ablate_stage_resolves_to_a_plan(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative outputs land in the temp dir
    cmd = _stages()["ablate"].split("&&")[0]
    argv = shlex.split(cmd)[1:] + ["--dry-run"]
    for arg in argv:  # the train and index stages' outputs, as they would be on disk
        if arg.startswith(("adapters.", "indexes.")) and ".path=" in arg:
            made = tmp_path / arg.split("=", 1)[1]
            made.mkdir(parents=True)
            (made / "weights.bin").write_bytes(arg.encode())
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = [line for line in lines if " cell " in line]
    params = _params()
    assert len(cells) == 12 and all(line.startswith("todo") for line in cells)
    # the adapters and indexes come from the train and index stages, by path: nothing to train or build here
    assert not any(" adapter " in line and "todo" in line for line in lines)
    assert any(f"adapters/code-dora/adapter" in line for line in lines) and params["profile"] == "quickstart"
