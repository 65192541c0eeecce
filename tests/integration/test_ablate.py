"""dorag ablate -> report -> gate on the tiny model: six conditions, cached cells, resume, tracking."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from dorag.cli.main import main
from dorag.core.io import read_json, read_jsonl

pytestmark = pytest.mark.integration


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def grid(tmp_path, tiny_model_dir, problems_file, code_corpus) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "lib.py").write_text("\n\n".join(
        f'def scale_{i}(values, k={i}):\n    """Scale each value by {i} and return the list."""\n    return [v * k for v in values]\n'
        for i in range(12)))
    cfg = {
        "name": "tiny", "out": str(tmp_path / "abl"),
        "model": {"name": str(tiny_model_dir)},
        "generation": {"max_new_tokens": 4, "batch_size": 4},
        "data": {"sources": [str(pkg)], "decontaminate": [], "eval_fraction": 0.25},
        "train": {"peft": {"r": 4, "targets": "attention"}, "training": {"max_steps": 2, "batch_size": 2,
                                                                         "max_seq_len": 1024, "save_steps": 1}},
        "indexes": {"code": {"build": {"corpus": str(code_corpus), "index": {"method": "bm25"}}}},
        "benchmarks": {"he3": {"problems": str(problems_file), "index": "code"}},
        "evaluate": {"ks": [1]},
    }
    path = tmp_path / "ablate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_six_conditions_report_cache_and_gate(capsys, tmp_path, grid):
    out = tmp_path / "abl"
    code, stdout, err = run(capsys, "ablate", grid, "--conditions", "baseline,rag_only")
    assert code == 0, err
    first = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}
    assert len(first) == 2 and "adapter" not in err  # no adapter needed by these two: none trained

    code, stdout, err = run(capsys, "ablate", grid)
    assert code == 0, err
    ablation = read_json(out / "ablation.json")
    assert [c["condition"] for c in ablation["cells"]] == ["baseline", "lora_only", "dora_only", "rag_only",
                                                          "lora_rag", "dora_rag"]
    for name, mtime in first.items():  # the two finished cells were not recomputed
        assert (out / "cells" / name / "cell.json").stat().st_mtime_ns == mtime
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")}
    assert len(done_before) == 6
    for cell in ablation["cells"]:
        rows = read_jsonl(cell["results"])
        assert len(rows) == 3 and {"task_id", "passed", "status"} <= set(rows[0])  # per-sample results kept
        if cell["index"]:
            assert all(r.get("retrieved") for r in read_jsonl(cell["samples"]))
    assert ablation["adapters"]["dora"]["method"] == "dora" and ablation["adapters"]["lora"]["steps"] == 2
    assert json.loads((Path(ablation["adapters"]["dora"]["dir"]) / "adapter" / "adapter_config.json").read_text())["use_dora"]

    report = out / "report"
    for name in ("results.csv", "results.md", "results.tex", "significance.csv", "significance.md", "report.md",
                 "training.csv", "conditions.png", "conditions.svg", "topk.png"):
        assert (report / name).is_file(), name
    sig = read_json(report / "report.json")["significance"]
    assert len(sig) == 5 + 3  # five against baseline, dora_rag against the three single methods
    from scipy.stats import binomtest

    for s in sig:  # each p is the exact McNemar p of its own discordant counts, and Holm only raises it
        d = s["only_a"] + s["only_b"]
        assert s["p"] == pytest.approx(binomtest(s["only_a"], d, 0.5).pvalue if d else 1.0) and s["p"] <= s["p_holm"]
    assert "dora_rag" in (report / "report.md").read_text() and "\\begin{tabular}" in (report / "results.tex").read_text()
    assert "is dora_rag" in stdout  # the synergy line

    # publish: PEFT directories with a model card; no token, so nothing is pushed and it says so
    import os

    os.environ.pop("HF_TOKEN", None)
    os.environ.pop("HUGGING_FACE_HUB_TOKEN", None)
    code, stdout, err = run(capsys, "publish", out, "--out", tmp_path / "pub")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["dora", "lora"]
    assert (tmp_path / "pub" / "dora" / "adapter_model.safetensors").is_file()
    assert "dora_rag" in (tmp_path / "pub" / "dora" / "README.md").read_text()
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "pub" / "dora" / "README.md")  # the Hub's own parser of the front matter
    assert card.data.library_name == "peft" and "dora" in card.data.tags
    assert card.data.base_model is None  # a tiny local model has no Hub id: none is invented (see test_publish)
    scores = read_json(out / "metrics.json")
    results = {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results == {("he3", f"pass@1 ({c})"): pytest.approx(scores["he3"][c]["pass@1"], abs=1e-4)
                       for c in ("dora_only", "dora_rag")}
    assert err.count("not pushed: no HF token") == 2

    # a re-run recomputes nothing
    code, stdout, err = run(capsys, "ablate", grid, "--dry-run")
    assert code == 0 and "todo" not in stdout and stdout.count("done") == 1 + 2 + 1 + 6
    code, same, err = run(capsys, "ablate", "-c", grid, "--dry-run")  # -c, as every other verb takes it
    assert code == 0 and same == stdout
    code, stdout, err = run(capsys, "ablate", grid)
    assert code == 0, err
    assert {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/cell.json")} == done_before
    assert "loading" not in err and "train" not in err.lower().replace("training data", "")

    # a changed setting makes new cells only where it matters
    code, stdout, err = run(capsys, "ablate", grid, "rag.top_k=1", "--dry-run")
    todo = [line for line in stdout.splitlines() if line.startswith("todo")]
    assert len(todo) == 3 and all("_rag" in line or "rag_only" in line for line in todo)

    # gate on the ablation metrics: a pattern rule covers every condition
    metrics = read_json(out / "metrics.json")
    assert set(metrics["he3"]) == set(ablation["conditions"])
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps({"he3": {c: {"pass@1": v["pass@1"] - 0.5} for c, v in metrics["he3"].items()}}))
    rules = tmp_path / "gate.yaml"
    rules.write_text("rules:\n  '*.pass@1': {tolerance: 0.02}\n")
    code, stdout, err = run(capsys, "gate", worse, "--baseline", out / "metrics.json", "-c", rules)
    assert code == 3 and stdout.count("regressed") == 6


def test_killed_cell_resumes_and_bad_config_is_one_line(capsys, tmp_path, grid):
    out = tmp_path / "abl"
    code, _, err = run(capsys, "ablate", grid, "--conditions", "baseline")
    assert code == 0, err
    cell = next((out / "cells").glob("baseline--*"))
    samples = cell / "samples.jsonl"
    # simulate a kill mid-cell: no done marker, one finished task on disk plus a torn line
    lines = samples.read_text().splitlines()
    (cell / "cell.json").unlink()
    samples.write_text(lines[0] + "\n" + lines[1][:10])
    code, _, err = run(capsys, "ablate", grid, "--conditions", "baseline")
    assert code == 0, err
    assert len(read_jsonl(samples)) == 3 and (cell / "cell.json").is_file()
    assert read_json(cell / "cell.json")["samples_generated"] == 2  # the finished task was kept, not redone

    code, _, err = run(capsys, "ablate", grid, "conditions.x.adapter=nope", "benchmarks.he3.limitt=2")
    assert code == 1 and "nope" in err and "limitt" in err and "Traceback" not in err


def test_a_malformed_benchmark_file_fails_before_any_training(capsys, tmp_path, grid):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "T/0", "prompt": "def f():\\n"}\n')  # no test, no entry_point
    code, _, err = run(capsys, "ablate", grid, f"benchmarks.he3.problems={bad}")
    assert code == 1 and err.startswith(f"error: {bad}:1: problem is missing field(s)") and "Traceback" not in err
    assert not (tmp_path / "abl").exists()  # nothing trained, built or written


def test_a_sampled_condition_reports_pass_at_10(capsys, tmp_path, grid):
    cfg = yaml.safe_load(grid.read_text())
    cfg["evaluate"] = {"ks": [1, 10]}
    cfg["conditions"] = {"baseline": {}, "sampled": {"set": {"generation": {"n": 10, "temperature": 0.8}}}}
    grid.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "ablate", grid)
    assert code == 0, err
    rows = {r["condition"]: r for r in csv.DictReader((tmp_path / "abl" / "report" / "results.csv").open())}
    assert rows["baseline"]["pass@10"] == ""  # greedy: one sample per task, no pass@10
    sampled = next(c for c in read_json(tmp_path / "abl" / "ablation.json")["cells"] if c["condition"] == "sampled")
    assert len(read_jsonl(sampled["samples"])) == 3 * 10
    # pass@10 from 10 samples is the share of tasks with at least one passing sample, read from the results
    passed: dict[str, int] = {}
    for r in read_jsonl(sampled["results"]):
        passed[r["task_id"]] = passed.get(r["task_id"], 0) + int(r["passed"])
    assert float(rows["sampled"]["pass@10"]) == pytest.approx(sum(c > 0 for c in passed.values()) / 3, abs=5e-4)
    assert rows["sampled"]["pass@10 95% CI"].startswith("[")
    tasks = list(csv.reader((tmp_path / "abl" / "report" / "tasks.csv").open()))
    assert all(row[3].endswith("/10") for row in tasks[1:])  # correct/n for the sampled cell


def test_mlflow_tracking_is_readable_with_the_client(capsys, tmp_path, grid):
    mlflow = pytest.importorskip("mlflow")
    out = tmp_path / "abl"
    code, _, err = run(capsys, "ablate", grid, "--conditions", "baseline,rag_only", "tracking.backend=mlflow")
    assert code == 0, err
    assert (out / "mlflow.db").is_file()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}")
    exp = client.get_experiment_by_name("dorag")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED" and r.info.run_name == "tiny"
    assert set(r.data.metrics) == {"he3/baseline/pass_1", "he3/rag_only/pass_1"}
    assert r.data.params["generation.max_new_tokens"] == "4" and r.data.tags["git_sha"]
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"ablation.json", "report.md", "results.csv"} <= artifacts


def test_an_index_given_by_path_is_left_untouched(capsys, tmp_path, grid, code_corpus):
    # DVC tracks the index stage's output directory: the ablation must read it, never write into it
    idx = tmp_path / "idx"
    code, _, err = run(capsys, "index", "build", "--out", idx, "--corpus", code_corpus, "--method", "bm25")
    assert code == 0, err
    before = {p.relative_to(idx): p.stat().st_mtime_ns for p in idx.rglob("*")}
    code, _, err = run(capsys, "ablate", grid, "--conditions", "rag_only", f"indexes.code.path={idx}")
    assert code == 0, err
    assert {p.relative_to(idx): p.stat().st_mtime_ns for p in idx.rglob("*")} == before
    cell = next((tmp_path / "abl" / "cells").glob("rag_only--*"))
    assert read_json(cell / "leakage-problems.json")["n_flagged"] == 0  # the report sits with the cell instead

    # a finished ablation that moved (or was run from another directory) still reports
    moved = tmp_path / "elsewhere" / "abl"
    moved.parent.mkdir()
    (tmp_path / "abl").rename(moved)
    code, _, err = run(capsys, "report", moved, "--out", tmp_path / "rep", "--bootstrap", "200")
    assert code == 0, err
    assert "rag_only" in (tmp_path / "rep" / "results.md").read_text()


def test_a_run_without_rag_conditions_does_not_open_the_unbuilt_index(capsys, tmp_path, grid):
    # a benchmark with relevance judgements (Unseen-API) gets retrieval figures only from an index that was built
    cfg = yaml.safe_load(grid.read_text())
    cfg["benchmarks"] = {"ua": {"benchmark": "unseen-api", "limit": 2, "index": "code"}}
    grid.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "ablate", grid, "--conditions", "baseline")
    assert code == 0, err
    ablation = read_json(tmp_path / "abl" / "ablation.json")
    assert [c["condition"] for c in ablation["cells"]] == ["baseline"] and ablation["retrieval"] == {}
    assert not (tmp_path / "abl" / "indexes").exists()
    code, _, err = run(capsys, "ablate", grid, "--conditions", "rag_only")
    assert code == 0, err
    assert read_json(tmp_path / "abl" / "ablation.json")["retrieval"]["ua"]["n_queries"] > 0


def test_a_context_that_decides_each_outcome_gives_the_exact_tests_their_real_values(capsys, tmp_path, json_server,
                                                                                       code_corpus):
    """Six crafted tasks and a scripted OpenAI-compatible server that answers right exactly when the prompt
    carries retrieved documents: rag_only passes 6 of 6 and baseline 0 of 6, so McNemar's exact p is 2 / 2**6."""
    import re

    from dorag.core.io import write_jsonl

    tasks = tmp_path / "offset.jsonl"
    write_jsonl(tasks, [{"task_id": f"Offset/{i}", "entry_point": f"offset_{i}",
                         "prompt": f'def offset_{i}(x):\n    """Add the documented offset of helper {i} to x."""\n',
                         "canonical_solution": f"    return x + {i + 1}\n",
                         "test": f"def check(candidate):\n    assert candidate(2) == {3 + i}\n"} for i in range(6)])

    def answer(body):
        prompt = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        i = int(re.search(r"def offset_(\d+)", prompt).group(1))
        grounded = prompt.startswith("Relevant code and documentation:")  # the RAG frame
        code = f"def offset_{i}(x):\n    return x + {i + 1 if grounded else 0}\n```"
        return {"choices": [{"message": {"content": code}, "finish_reason": "stop"}], "usage": {"completion_tokens": 9}}

    cfg = {"name": "decided", "out": str(tmp_path / "abl"),
           "model": {"name": "scripted", "backend": "openai", "base_url": json_server(answer)},
           "generation": {"max_new_tokens": 32, "batch_size": 6},
           "indexes": {"code": {"build": {"corpus": str(code_corpus), "index": {"method": "bm25"}}}},
           "benchmarks": {"offset": {"problems": str(tasks), "index": "code"}},
           "conditions": {"baseline": {}, "rag_only": {"rag": True}}, "evaluate": {"ks": [1]}}
    path = tmp_path / "ablate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, stdout, err = run(capsys, "ablate", path)
    assert code == 0, err
    report = read_json(tmp_path / "abl" / "report" / "report.json")
    scores = {r["condition"]: r["pass@1"] for r in report["rows"]}
    assert scores == {"baseline": 0.0, "rag_only": 1.0}
    (row,) = report["significance"]
    assert (row["a"], row["b"], row["only_a"], row["only_b"]) == ("rag_only", "baseline", 6, 0)
    assert row["p"] == row["p_holm"] == 2 / 2 ** 6 and row["diff"] == 1.0
    tasks_csv = list(csv.reader((tmp_path / "abl" / "report" / "tasks.csv").open()))
    assert tasks_csv[1:] == [["offset", f"Offset/{i}", "FAIL", "PASS"] for i in range(6)]
