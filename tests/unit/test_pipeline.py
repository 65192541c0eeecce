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


def test_dvc_draws_the_reports_plots_offline_and_diffs_them_across_commits(tmp_path):
    """The report stage's tables are DVC plots: `dvc plots show` renders them from a real report, and `dvc plots
    diff` compares two commits. The gate's baseline is a declared output."""
    import json
    import shutil
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import PASSES, _ablation

    from dorag.experiments.report import write_report

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    gate_outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["gate"]["outs"]]
    assert "${gate.baseline}" in gate_outs
    repo = tmp_path / "repo"
    repo.mkdir()

    def sh(*args: str) -> str:
        proc = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=120,
                              env={**__import__("os").environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
                                   "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copy(ROOT / "params.yaml", repo)
    (tmp_path / "abl").mkdir()
    _ablation(tmp_path / "abl", PASSES)
    write_report([tmp_path / "abl" / "syn"], tmp_path / "rep", n_boot=100)
    (repo / "plots").mkdir()
    for name in ("results.csv", "significance.csv"):
        shutil.copy(tmp_path / "rep" / name, repo / "plots")
    shown = json.loads(sh("dvc", "plots", "show", "--json"))["data"]
    values = shown["plots/results.csv"][0]["content"]["data"]["values"]
    assert {v["condition"]: v["pass@1"] for v in values}["dora_rag"] == "0.700"
    assert shown["plots/significance.csv"][0]["content"]["data"]["values"]
    sh("git", "add", ".")
    sh("git", "commit", "-qm", "first report")
    text = (repo / "plots" / "results.csv").read_text().replace("0.700", "0.650")
    (repo / "plots" / "results.csv").write_text(text)
    diff = json.loads(sh("dvc", "plots", "diff", "HEAD", "--json"))["data"]["plots/results.csv"][0]
    revs = {v["rev"]: v["pass@1"] for v in diff["content"]["data"]["values"] if v["condition"] == "dora_rag"}
    assert revs == {"HEAD": "0.700", "workspace": "0.650"}
