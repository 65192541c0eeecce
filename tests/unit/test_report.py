"""dorag report on synthetic ablations: tables, comparisons, Holm, the synergy line, plots."""

from __future__ import annotations

import csv

import pytest

from dorag.core.io import read_json, write_json
from dorag.experiments.report import (analyse, comparisons, latex, markdown, score_table, sig_table, topk_series,
                                     write_report)
from dorag.experiments.stats import mcnemar_exact, sign_flip_test

CONDS = ["baseline", "lora_only", "dora_only", "rag_only", "lora_rag", "dora_rag"]


def _ablation(tmp_path, passes: dict[str, set[int]], n: int = 20, name: str = "syn") -> dict:
    cells = []
    for cond in CONDS:
        per_task = {f"T/{i}": {"n": 1, "correct": int(i in passes[cond])} for i in range(n)}
        (tmp_path / name).mkdir(exist_ok=True)
        rate = len(passes[cond]) / n
        summary = {"pass@1": {"value": rate, "ci95_low": max(0.0, rate - 0.1), "ci95_high": min(1.0, rate + 0.1)},
                   "n_tasks": n, "per_task": per_task}
        path = tmp_path / name / f"{cond}_summary.json"
        write_json(path, summary)
        cells.append({"condition": cond, "benchmark": "bench", "summary": str(path),
                      "top_k": 4 if "rag" in cond else None})
    ab = {"name": name, "conditions": CONDS, "cells": cells,
          "adapters": {"dora": {"method": "dora", "steps": 12, "train_tokens": 100, "wall_s": 5.0, "tokens_per_s": 20.0,
                                "eval_loss_before": 0.6, "eval_loss_after": 0.5, "trainable_params": 10}},
          "retrieval": {"bench": {"index": "i", "method": "bm25", "n_queries": n,
                                  "metrics": {"recall@1": 0.5, "recall@5": 0.7, "recall@10": 0.8, "ndcg@10": 0.6}}}}
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
    assert s["test"] == "McNemar exact" and s["p"] == pytest.approx(mcnemar_exact(9, 0)) == pytest.approx(2 / 2 ** 9)
    assert s["diff"] == pytest.approx(0.45) and s["needed_for_p05"] == "8 of 9"  # (8, 1): 2 * 10 / 512 = 0.039
    assert "bootstrap_p" not in s and s["diff_ci"][0] < 0.45 < s["diff_ci"][1]
    # Holm over the family of 8: the smallest p-value is multiplied by 8, never below the raw value
    raw = sorted(x["p"] for x in result["significance"])
    assert min(x["p_holm"] for x in result["significance"]) == pytest.approx(min(1.0, 8 * raw[0]))
    assert all(x["p"] <= x["p_holm"] <= 1 for x in result["significance"])
    # lora_only vs baseline: task 4 only, 1 discordant: no split reaches 0.05
    assert sig[("lora_only", "baseline")]["needed_for_p05"] == "unreachable (1 discordant)"
    (line,) = result["synergy"]
    # raw p: vs baseline (10, 0) 2/2^10; vs lora_only and dora_only (9, 0) 2/2^9; vs rag_only (8, 0) 2/2^8;
    # Holm: 8 * 0.00195 = 0.0156, 7 * 0.00391 = 0.0273, max(6 * 0.00391, 0.0273) = 0.0273, 5 * 0.00781 = 0.0391
    assert line == ("bench: is dora_rag (0.700) better than both dora_only (0.250, +0.450, McNemar exact p=0.00391, "
                    "Holm 0.0273) and rag_only (0.300, +0.400, McNemar exact p=0.00781, Holm 0.0391)? "
                    "yes, and significant at 0.05 against both (n=20)")
    assert sig[("dora_rag", "rag_only")]["p_holm"] == pytest.approx(5 * 2 / 2 ** 8)
    assert "bootstrap" not in line


def test_synergy_needs_the_holm_corrected_p_below_005(tmp_path):
    # dora_rag passes tasks 0..11: raw p vs dora_only (7, 0) 0.0156 and vs rag_only (6, 0) 0.0312, both < 0.05;
    # but the family's smallest, vs baseline (8, 0) 0.0078, is already 0.0625 after Holm's factor 8
    narrow = {**PASSES, "dora_rag": set(range(12))}
    result = analyse([_ablation(tmp_path, narrow)], n_boot=500)
    sig = {(s["a"], s["b"]): s for s in result["significance"]}
    assert sig[("dora_rag", "dora_only")]["p"] < 0.05 and sig[("dora_rag", "rag_only")]["p"] < 0.05
    (line,) = result["synergy"]
    assert line.endswith("? yes, but not significant at 0.05 against both (n=20)")


def _sampled(tmp_path, ab: dict, cond: str, correct: dict[int, int], n: int = 10) -> None:
    cell = next(c for c in ab["cells"] if c["condition"] == cond)
    summary = read_json(cell["summary"])
    summary["per_task"] = {t: {"n": n, "correct": correct.get(int(t.split("/")[1]), 0)} for t in summary["per_task"]}
    write_json(cell["summary"], summary)


def test_sampled_cells_use_the_exact_sign_flip_test(tmp_path):
    ab = _ablation(tmp_path, PASSES)
    # dora_rag sampled 10 times per task: 7/10 on tasks 0..13; dora_only stays pass/fail (tasks 0..4)
    _sampled(tmp_path, ab, "dora_rag", {i: 7 for i in range(14)})
    sig = {(s["a"], s["b"]): s for s in analyse([ab], n_boot=500)["significance"]}
    s = sig[("dora_rag", "dora_only")]
    # differences: -0.3 on tasks 0..4, +0.7 on tasks 5..13; the tie-free sign-flip test over these 14
    assert s["test"] == "sign-flip exact" and (s["only_a"], s["only_b"]) == (9, 5)
    assert s["p"] == pytest.approx(sign_flip_test([-0.3] * 5 + [0.7] * 9)[0], rel=1e-12)
    assert s["p"] != pytest.approx(mcnemar_exact(9, 5))  # not McNemar on outcomes thresholded at 0.5
    assert s["needed_for_p05"] == "depends on sizes (14 differing)"
    assert sig[("lora_only", "baseline")]["test"] == "McNemar exact"  # both pass/fail
    header, body = sig_table(list(sig.values()))
    assert header[-5:] == ["B better", "test", "p", "p (Holm)", "needed for p<0.05"]


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
    sig_md = (tmp_path / "rep" / "significance.md").read_text()
    assert sig_md.startswith("| benchmark | A | B | tasks | pass@1 A | pass@1 B | diff | diff 95% CI | A better | B better "
                             "| test | p | p (Holm) | needed for p<0.05 |")
    assert "| dora_rag | dora_only | 20 | 0.700 | 0.250 | +0.450 |" in sig_md and "| 9 | 0 | McNemar exact | 0.00391 |" in sig_md
    for text in (sig_md, md, (tmp_path / "rep" / "significance.csv").read_text(), *result["synergy"]):
        assert "bootstrap p" not in text.lower()
    assert "McNemar's exact test" in md and "sign-flip" in md and "not a test" in md
    # 20 tasks: a smoke-size run, said first; each comparison's discordant count and what it would need
    assert md.splitlines()[2].startswith("**Smoke-size run: 20 tasks per benchmark**")
    assert ("bench: at n=20 tasks, a comparison needs at least 6 discordant tasks, all in one direction, to reach "
            "p < 0.05 (McNemar exact), and at least 9 for the strongest of this benchmark's 8 comparisons (Holm multiplies "
            "its p by 8); with D discordant tasks it needs at least W of them in one direction: ") in md
    assert "lora_only vs baseline: 1 discordant, cannot reach;" in md and "dora_rag vs dora_only: 9 discordant, needs 8 of 9" in md
    assert (tmp_path / "rep" / "results.tex").read_text().count("\\\\") == 7  # header + 6 rows
    pytest.importorskip("matplotlib")
    assert (tmp_path / "rep" / "conditions.svg").stat().st_size > 1000 and (tmp_path / "rep" / "topk.png").is_file()
    assert str(tmp_path / "rep" / "report.md") == result["report"]
    tasks = list(csv.reader((tmp_path / "rep" / "tasks.csv").open()))
    assert tasks[0] == ["benchmark", "task_id", *CONDS] and len(tasks) == 1 + 20
    assert [r[1] for r in tasks[1:4]] == ["T/0", "T/1", "T/2"] and tasks[11][1] == "T/10"  # natural order
    # T/13 passes only with dora_rag (passes: range(14) vs range(8) for lora_rag)
    assert tasks[14][1:] == ["T/13", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL", "PASS"]


def test_smoke_statement_follows_the_size_or_the_caller(tmp_path):
    from dorag.experiments.report import smoke_line

    _ablation(tmp_path, PASSES, n=120, name="big")
    write_report([tmp_path / "big"], tmp_path / "big-rep", n_boot=100)
    assert "Smoke-size" not in (tmp_path / "big-rep" / "report.md").read_text()  # 120 tasks: not smoke-size
    result = write_report([tmp_path / "big"], tmp_path / "forced", n_boot=100, smoke=True)
    assert result["smoke"] and "**Smoke-size run: 120 tasks per benchmark**" in (tmp_path / "forced" / "report.md").read_text()
    _ablation(tmp_path, PASSES, n=20, name="small")
    result = write_report([tmp_path / "small"], tmp_path / "not", n_boot=100, smoke=False)
    assert not result["smoke"] and "Smoke-size" not in (tmp_path / "not" / "report.md").read_text()
    assert smoke_line({"humaneval": 16, "unseen-api": 24}).startswith(
        "**Smoke-size run: 16 (humaneval) / 24 (unseen-api) tasks per benchmark**")


def test_a_tiny_benchmark_says_no_comparison_can_reach_significance(tmp_path):
    result = analyse([_ablation(tmp_path, {c: set(range(2)) for c in CONDS}, n=5)], n_boot=100)
    assert result["power"] == ["bench: at n=5 tasks no comparison can reach p < 0.05: McNemar's exact test needs at "
                               "least 6 discordant tasks, all in one direction."]


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


def test_the_report_says_which_cells_had_a_weaker_sandbox(tmp_path):
    ab = _ablation(tmp_path, PASSES)
    full = {"platform": "linux", "network_isolated": True, "privileges_dropped": True, "weaker": []}
    for i, cell in enumerate(ab["cells"]):
        summary = read_json(cell["summary"])
        summary["sandbox"] = full if i else {**full, "network_isolated": False,
                                             "weaker": ["no network namespace (unshare failed on this kernel)"]}
        write_json(cell["summary"], summary)
    md = (tmp_path / "rep" / "report.md")
    write_report([tmp_path / "syn"], tmp_path / "rep", n_boot=200)
    assert "- **Weaker:** no network namespace (unshare failed on this kernel) (1 cell(s): bench/baseline)" in md.read_text()
    summary = read_json(ab["cells"][0]["summary"])
    summary["sandbox"] = full
    write_json(ab["cells"][0]["summary"], summary)
    write_report([tmp_path / "syn"], tmp_path / "rep", n_boot=200)
    assert "Every cell was scored with the sandbox's full isolation" in md.read_text() and "Weaker" not in md.read_text()


def test_rows_break_each_benchmark_down_by_its_levels(tmp_path):
    ab = _ablation(tmp_path, PASSES)
    for cell in ab["cells"]:
        summary = read_json(cell["summary"])
        summary["by_meta"] = {"difficulty": {lv: {"pass@1": {"value": v, "ci95_low": 0.0, "ci95_high": 1.0}}
                                             for lv, v in (("compose", 0.5), ("single", 0.25))}}
        summary["by_meta_tasks"] = {"difficulty": {"compose": 8, "single": 12}}
        write_json(cell["summary"], summary)
    rows = analyse([ab], n_boot=100)["rows"]
    levels = [(r["benchmark"], r["condition"], r["n_tasks"], r["pass@1"]) for r in rows if "/" in r["benchmark"]]
    assert levels[:2] == [("bench/compose", "baseline", 8, 0.5), ("bench/single", "baseline", 12, 0.25)]
    assert len(levels) == 2 * len(CONDS)


def test_outcomes_count_each_status_and_name_the_commonest_errors(tmp_path):
    from dorag.core.io import write_jsonl

    ab = _ablation(tmp_path, PASSES)
    results = tmp_path / "syn" / "dora_rag_results.jsonl"
    missing = "AttributeError: module 'zorbel' has no attribute 'sum'"
    write_jsonl(results, [{"task_id": "T/0", "passed": True, "status": "PASS", "detail": ""},
                          {"task_id": "T/1", "passed": False, "status": "FAIL", "detail": "AssertionError: "},
                          {"task_id": "T/2", "passed": False, "status": "RUNTIME_ERROR", "detail": missing},
                          {"task_id": "T/3", "passed": False, "status": "RUNTIME_ERROR", "detail": missing},
                          {"task_id": "T/4", "passed": False, "status": "SYNTAX_ERROR", "detail": "invalid syntax (line 3)"},
                          {"task_id": "T/5", "passed": False, "status": "TIMEOUT", "detail": ""}])
    ab["cells"][-1]["results"] = str(results)
    write_json(tmp_path / "syn" / "ablation.json", ab)
    write_report([tmp_path / "syn"], tmp_path / "rep", n_boot=100)
    rows = list(csv.reader((tmp_path / "rep" / "outcomes.csv").open()))
    assert rows[0] == ["benchmark", "condition", "PASS", "FAIL", "RUNTIME_ERROR", "SYNTAX_ERROR", "TIMEOUT", "MEMORY",
                       "top errors"]
    assert rows[1:] == [["bench", "dora_rag", "1", "1", "2", "1", "1", "0",
                         f"{missing} (2); invalid syntax (line 3) (1)"]]
    assert "## Outcomes" in (tmp_path / "rep" / "report.md").read_text()


def test_cost_loss_and_em_tables_and_the_new_plots(tmp_path):
    from dorag.core.io import write_jsonl
    from dorag.experiments.report import condition_colours, cost_table, loss_table

    ab = _ablation(tmp_path, PASSES)
    for cell in ab["cells"]:
        cell["wall_s"] = 10.0 + len(cell["condition"])
        cell["figures"] = {"generate_s": 8.0, "generated_tokens": 400, "tokens_per_s": 50.0,
                           **({"prompt_tokens": 1234} if cell["condition"] != "baseline" else {})}
        cell["metrics"] = {"pass@1": len(PASSES[cell["condition"]]) / 20}
        if cell["condition"] == "baseline":  # an older cell: the prompt tokens are counted from its samples
            cell["samples"] = str(tmp_path / "syn" / "base_samples.jsonl")
            write_jsonl(cell["samples"], [{"task_id": f"T/{i}", "prompt_tokens": 100} for i in range(20)])
    adir = tmp_path / "syn" / "dora-adapter"
    adir.mkdir()
    write_jsonl(adir / "metrics.jsonl", [{"step": 0, "eval_loss": 0.6}, {"step": 5, "loss": 0.9}, {"step": 10, "loss": 0.7},
                                         {"step": 10, "eval_loss": 0.5}, {"step": 10, "loss": 0.65}])  # resumed: last wins
    ab["adapters"]["dora"]["dir"] = str(adir)
    write_json(tmp_path / "syn" / "ablation.json", ab)
    header, body = cost_table([ab])
    assert header[:4] == ["benchmark", "condition", "pass@1", "wall_s"]
    assert body[0] == ["bench", "baseline", "0.200", "18.0", "8.0", "2000", "400", "50.0"]
    assert body[-1][5] == "1234"
    assert loss_table([ab])[1] == [["dora", "0", "", "0.6000"], ["dora", "5", "0.9000", ""], ["dora", "10", "0.6500", "0.5000"]]
    result = write_report([tmp_path / "syn"], tmp_path / "rep", n_boot=200)
    for name in ("forest.png", "forest.svg", "loss.png", "cost.png", "cost.csv", "loss.csv"):
        assert (tmp_path / "rep" / name).is_file(), name
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Cost" in md and "![forest](forest.svg)" in md and "![loss](loss.svg)" in md
    assert result["files"]
    colours = condition_colours(CONDS)
    assert len(set(colours.values())) == len(CONDS) and condition_colours(CONDS) == colours
    # text-to-SQL: EM beside EX
    rows = [{"benchmark": "spider", "condition": "baseline", "n_tasks": 2, "pass@1": 0.5, "pass@1_ci": (0, 1), "EM": 0.25}]
    header, body = score_table(rows)
    assert header[-1] == "EM" and body[0][-1] == "0.250"


def test_retrieval_hit_against_pass(tmp_path):
    from dorag.core.io import write_jsonl
    from dorag.experiments.indexing import benchmark_qrels
    from dorag.experiments.report import hit_table

    rels = benchmark_qrels("unseen-api")[1]
    tasks = [f"UnseenAPI/{i}" for i in range(6)]
    samples, results = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    # tasks 0-2 got one of their relevant documents (a chunk of it counts), 3-5 only others
    write_jsonl(samples, [{"task_id": t, "sample_idx": 0,
                           "context_ids": [next(iter(rels[t])) + ("#0" if i == 1 else "")] if i < 3 else ["zorbel:nothing"]}
                          for i, t in enumerate(tasks)])
    write_jsonl(results, [{"task_id": t, "passed": i in (0, 1, 3)} for i, t in enumerate(tasks)])
    ab = {"name": "x", "cells": [{"benchmark": "unseen-api", "condition": "rag_only", "index": "u", "samples": str(samples),
                                  "results": str(results)},
                                 {"benchmark": "unseen-api", "condition": "baseline", "index": None}]}
    header, body = hit_table([ab])
    assert body == [["unseen-api", "rag_only", "3", "0.667", "3", "0.333"]]
