"""dorag report on synthetic ablations: tables, comparisons, Holm, the synergy line, plots."""

from __future__ import annotations

import csv

import pytest

from dorag.core.io import read_json, write_json
from dorag.experiments.report import analyse, comparisons, latex, markdown, score_table, topk_series, write_report
from dorag.experiments.stats import mcnemar_exact

CONDS = ["baseline", "lora_only", "dora_only", "rag_only", "lora_rag", "dora_rag"]


def _ablation(tmp_path, passes: dict[str, set[int]], n: int = 20, name: str = "syn") -> dict:
    cells = []
    for cond in CONDS:
        per_task = {f"T/{i}": {"n": 1, "correct": int(i in passes[cond])} for i in range(n)}
        rate = len(passes[cond]) / n
        summary = {"pass@1": {"value": rate, "ci95_low": max(0.0, rate - 0.1), "ci95_high": min(1.0, rate + 0.1)},
                   "n_tasks": n, "per_task": per_task}
        path = tmp_path / f"{cond}_summary.json"
        write_json(path, summary)
        cells.append({"condition": cond, "benchmark": "bench", "summary": str(path),
                      "top_k": 4 if "rag" in cond else None})
    ab = {"name": name, "conditions": CONDS, "cells": cells,
          "adapters": {"dora": {"method": "dora", "steps": 12, "train_tokens": 100, "wall_s": 5.0, "tokens_per_s": 20.0,
                                "eval_loss_before": 0.6, "eval_loss_after": 0.5, "trainable_params": 10}},
          "retrieval": {"bench": {"index": "i", "method": "bm25", "n_queries": n,
                                  "metrics": {"recall@1": 0.5, "recall@5": 0.7, "recall@10": 0.8, "ndcg@10": 0.6}}}}
    (tmp_path / name).mkdir()
    write_json(tmp_path / name / "ablation.json", ab)
    return ab


PASSES = {"baseline": set(range(4)), "lora_only": set(range(5)), "dora_only": set(range(5)),
          "rag_only": set(range(6)), "lora_rag": set(range(8)), "dora_rag": set(range(14))}


def test_comparisons_cover_baseline_and_single_methods():
    pairs = comparisons(CONDS)
    assert pairs[:5] == [(c, "baseline") for c in CONDS[1:]]
    assert pairs[5:] == [("dora_rag", "lora_only"), ("dora_rag", "dora_only"), ("dora_rag", "rag_only")]
    assert comparisons(["baseline", "rag_only"]) == [("rag_only", "baseline")]


def test_analyse_counts_pvalues_holm_and_synergy(tmp_path):
    result = analyse([_ablation(tmp_path, PASSES)], n_boot=2000)
    sig = {(s["a"], s["b"]): s for s in result["significance"]}
    s = sig[("dora_rag", "dora_only")]
    # tasks 5..13 pass only with dora_rag, none only with dora_only: McNemar b=9, c=0
    assert (s["only_a"], s["only_b"], s["both"]) == (9, 0, 5)
    assert s["mcnemar_p"] == pytest.approx(mcnemar_exact(9, 0)) == pytest.approx(2 / 2 ** 9)
    assert s["diff"] == pytest.approx(0.45)
    # Holm over the family of 8: the smallest p-value is multiplied by 8 at most, never below the raw value
    raw = sorted(x["mcnemar_p"] for x in result["significance"])
    assert min(x["mcnemar_p_holm"] for x in result["significance"]) == pytest.approx(min(1.0, 8 * raw[0]))
    assert all(x["mcnemar_p"] <= x["mcnemar_p_holm"] <= 1 for x in result["significance"])
    (line,) = result["synergy"]
    assert "is dora_rag (0.700) better than both dora_only (0.250" in line and "rag_only (0.300" in line
    assert "yes, and significant" in line


def test_no_synergy_is_reported_as_such(tmp_path):
    passes = {**PASSES, "dora_rag": set(range(5))}
    (line,) = analyse([_ablation(tmp_path, passes)], n_boot=500)["synergy"]
    assert line.endswith("? no (n=20)")


def test_report_files(tmp_path):
    _ablation(tmp_path, PASSES)
    result = write_report([tmp_path / "syn"], tmp_path / "rep", n_boot=500)
    rows = list(csv.reader((tmp_path / "rep" / "results.csv").open()))
    assert rows[0][:4] == ["benchmark", "condition", "tasks", "pass@1"] and len(rows) == 7
    assert rows[-1][1] == "dora_rag" and rows[-1][3] == "0.700" and rows[-1][4] == "[0.600, 0.800]"
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Synergy" in md and "## Retrieval" in md and "## Training" in md
    assert (tmp_path / "rep" / "results.tex").read_text().count("\\\\") == 7  # header + 6 rows
    pytest.importorskip("matplotlib")
    assert (tmp_path / "rep" / "conditions.svg").stat().st_size > 1000 and (tmp_path / "rep" / "topk.png").is_file()
    assert str(tmp_path / "rep" / "report.md") == result["report"]
    tasks = list(csv.reader((tmp_path / "rep" / "tasks.csv").open()))
    assert tasks[0] == ["benchmark", "task_id", *CONDS] and len(tasks) == 1 + 20
    assert [r[1] for r in tasks[1:4]] == ["T/0", "T/1", "T/2"] and tasks[11][1] == "T/10"  # natural order
    # T/13 passes only with dora_rag (passes: range(14) vs range(8) for lora_rag)
    assert tasks[14][1:] == ["T/13", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "PASS"]


def test_task_table_reads_statuses_and_sampled_counts(tmp_path):
    from dorag.core.io import write_jsonl
    from dorag.experiments.report import task_table

    ab = _ablation(tmp_path, PASSES, n=3)
    results = tmp_path / "results.jsonl"
    write_jsonl(results, [{"task_id": "T/0", "passed": True, "status": "PASS"},
                          {"task_id": "T/1", "passed": False, "status": "TIMEOUT"},
                          {"task_id": "T/2", "passed": False, "status": "SYNTAX_ERROR"}])
    ab["cells"][0]["results"] = str(results)
    sampled = read_json(ab["cells"][1]["summary"])
    sampled["per_task"]["T/1"] = {"n": 10, "correct": 4}
    write_json(ab["cells"][1]["summary"], sampled)
    header, body = task_table([ab])
    assert body[1][:4] == ["bench", "T/1", "TIMEOUT", "4/10"] and body[2][2] == "SYNTAX_ERROR"


def test_topk_series_pairs_each_rag_condition_with_its_adapter():
    grid = [("baseline", None, None, None, 0.1), ("rag_only", None, "docs", 4, 0.3), ("dora_only", "dora", None, None, 0.2),
            ("dora_rag", "dora", "docs", 4, 0.5), ("dora_rag_k1", "dora", "docs", 1, 0.25), ("dora_rag_k8", "dora", "docs", 8, 0.4),
            ("dora_rag_t07", "dora", "docs", 4, 0.9),  # same adapter, index and k, other settings: the first counts
            ("rag_dense", None, "docs-dense", 4, 0.05), ("qlora_rag", "qlora", "docs", 4, 0.35)]  # no qlora_only: one point
    rows = [{"benchmark": "b", "condition": c, "adapter": a, "index": i, "top_k": k, "pass@1": p, "n_tasks": 3}
            for c, a, i, k, p in grid]
    assert topk_series(rows) == {("b", "base / docs"): [(0, 0.1), (4, 0.3)], ("b", "base / docs-dense"): [(0, 0.1), (4, 0.05)],
                                 ("b", "dora"): [(0, 0.2), (1, 0.25), (4, 0.5), (8, 0.4)]}


def test_rows_carry_each_cells_adapter_and_index(tmp_path):
    rows = analyse([_ablation(tmp_path, PASSES)], n_boot=100)["rows"]
    # cells of an older ablation.json name neither: the six conditions' adapters are known, the index is not
    assert {r["condition"]: (r["adapter"], r["index"]) for r in rows}["dora_rag"] == ("dora", "?")
    assert sorted(topk_series(rows)) == [("bench", "base"), ("bench", "dora"), ("bench", "lora")]


def test_table_escaping():
    assert "a\\_b" in latex(["x", "y"], [["a_b", "50%"]], "c") and "50\\%" in latex(["x", "y"], [["a_b", "50%"]], "c")
    assert markdown(["a"], [["x|y"]]).splitlines()[-1] == "| x\\|y |"


def test_sampled_cells_add_pass_at_10_columns_and_ds1000_libraries(tmp_path):
    ab = _ablation(tmp_path, PASSES)
    sampled = read_json(ab["cells"][0]["summary"])
    sampled["pass@10"] = {"value": 0.45, "ci95_low": 0.3, "ci95_high": 0.6}
    sampled["by_library"] = {lib: {"pass@1": {"value": v, "ci95_low": v - 0.1, "ci95_high": v + 0.1}}
                             for lib, v in (("Numpy", 0.25), ("Pandas", 0.15))}
    write_json(ab["cells"][0]["summary"], sampled)
    header, body = score_table(analyse([ab], n_boot=200)["rows"])
    assert header == ["benchmark", "condition", "tasks", "pass@1", "pass@1 95% CI", "pass@10", "pass@10 95% CI"]
    assert body[0][1:] == ["baseline", "20", "0.200", "[0.100, 0.300]", "0.450", "[0.300, 0.600]"]
    assert body[1][0] == "bench/Numpy" and body[1][3:5] == ["0.250", "[0.150, 0.350]"] and body[1][5:] == ["", ""]
    assert body[3][1] == "lora_only" and body[3][5:] == ["", ""]  # greedy cells leave pass@10 empty
