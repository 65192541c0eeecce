"""`dorag report`: tables, plots and paired significance tests from one or more ablations.

Input: ablation directories (each with ``ablation.json``, see ``experiments.runner``). Output, in one
report directory: ``results.{csv,md,tex}`` (pass@k with bootstrap 95% CIs per benchmark and condition,
DS-1000 per library), ``significance.{csv,md,tex}`` (per comparison an exact paired test, McNemar's for
pass/fail cells and the sign-flip test for sampled ones, Holm-corrected within each benchmark, with a
paired-bootstrap interval of the difference), ``training.csv``, ``retrieval.csv``, ``tasks.csv``,
``report.md`` (all of it plus the synergy line and what the sample size can show) and
``conditions.{png,svg}``, ``topk.{png,svg}`` when matplotlib is installed.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import read_json, read_jsonl, write_json, write_text_atomic
from dorag.experiments.stats import MCNEMAR, compare, discordant_needed, holm, needed_in_one_direction

SINGLE = ("lora_only", "dora_only", "rag_only")


def load_ablations(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    found = []
    for p in paths:
        path = Path(p)
        file = path / "ablation.json" if path.is_dir() else path
        if not file.is_file():
            raise DataError(f"{p}: no ablation.json; give a directory written by dorag ablate")
        found.append(rebase(read_json(file), file.parent))
    return found


def rebase(ablation: dict[str, Any], root: Path) -> dict[str, Any]:
    """Point the recorded file paths into `root` when the ablation was written from another working
    directory or has moved since (its paths are as the run saw them, often relative to where it ran)."""
    def moved(path: str, old_out: Path) -> str:
        if Path(path).exists():
            return path
        try:
            return str(root / Path(path).relative_to(old_out))
        except ValueError:
            return path

    with_dir = [c for c in ablation.get("cells", []) if "dir" in c]
    if not with_dir:
        return ablation
    old_out = Path(with_dir[0]["dir"]).parent.parent  # <out>/cells/<cell>
    for cell in with_dir:
        for key in ("dir", "samples", "results", "summary"):
            if key in cell:
                cell[key] = moved(cell[key], old_out)
    for info in ablation.get("adapters", {}).values():
        if not info.get("given") and "dir" in info:
            info["dir"] = moved(info["dir"], old_out)
    return ablation


UNKNOWN = "?"
# the six conditions' adapters, for an ablation.json written before cells recorded theirs
_SIX_ADAPTERS = {"baseline": None, "rag_only": None, "lora_only": "lora", "lora_rag": "lora", "dora_only": "dora",
                 "dora_rag": "dora"}


def _per_task(summary: dict[str, Any]) -> dict[str, float]:
    return {t: v["correct"] / v["n"] if v["n"] else 0.0 for t, v in summary.get("per_task", {}).items()}


def comparisons(conditions: Sequence[str]) -> list[tuple[str, str]]:
    """(A, B) pairs: every condition against baseline, and dora_rag against each single method."""
    pairs = [(c, "baseline") for c in conditions if c != "baseline" and "baseline" in conditions]
    if "dora_rag" in conditions:
        pairs += [("dora_rag", s) for s in SINGLE if s in conditions]
    return pairs


def analyse(ablations: Sequence[dict[str, Any]], n_boot: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Rows of scores, paired comparisons with Holm-adjusted p-values, synergy lines, what each benchmark's
    size can show (power), training and retrieval."""
    rows, sig, synergy, power, training, retrieval = [], [], [], [], [], []
    sandbox: dict[str, list[str]] = {}  # what a cell's sandbox did not enforce -> the cells
    for ab in ablations:
        by_bench: dict[str, dict[str, dict[str, Any]]] = {}
        for cell in ab["cells"]:
            summary = read_json(cell["summary"])
            where = f"{cell['benchmark']}/{cell['condition']}"
            iso = summary.get("sandbox")
            for reason in (iso.get("weaker") or []) if iso else ["not recorded (scored before dorag recorded it)"]:
                sandbox.setdefault(reason, []).append(where)
            by_bench.setdefault(cell["benchmark"], {})[cell["condition"]] = {"cell": cell, "summary": summary}
            row = {"ablation": ab["name"], "benchmark": cell["benchmark"], "condition": cell["condition"],
                   "n_tasks": summary["n_tasks"], "top_k": cell.get("top_k"),
                   "index": cell.get("index") or (UNKNOWN if cell.get("top_k") else None),
                   "adapter": cell["adapter"] if "adapter" in cell else _SIX_ADAPTERS.get(cell["condition"], UNKNOWN)}
            for key, entry in summary.items():
                if key.startswith("pass@") and isinstance(entry, dict):
                    row[key] = entry["value"]
                    row[f"{key}_ci"] = (entry["ci95_low"], entry["ci95_high"])
            if isinstance(summary.get("exact_match"), float):  # text-to-SQL: EM beside EX (pass@1)
                row["EM"] = summary["exact_match"]
            rows.append(row)
            by_meta = summary.get("by_meta") or ({"library": summary["by_library"]} if summary.get("by_library") else {})
            for field, groups in by_meta.items():
                if len(groups) < 2:  # a one-library benchmark adds nothing
                    continue
                sizes = (summary.get("by_meta_tasks") or {}).get(field, {})
                for value, entries in groups.items():  # Unseen-API's levels, DS-1000's libraries
                    base = {k: v for k, v in row.items() if not k.startswith("pass@")}  # not the overall scores
                    rows.append({**base, "benchmark": f"{cell['benchmark']}/{value}", "n_tasks": sizes.get(value),
                                 **{k: e["value"] for k, e in entries.items()},
                                 **{f"{k}_ci": (e["ci95_low"], e["ci95_high"]) for k, e in entries.items()}})
        for bench, conds in by_bench.items():
            family = []
            for a, b in comparisons([c for c in ab["conditions"] if c in conds]):
                cmp = compare(_per_task(conds[a]["summary"]), _per_task(conds[b]["summary"]), n_boot=n_boot, seed=seed)
                family.append({"ablation": ab["name"], "benchmark": bench, "a": a, "b": b, **cmp.to_dict()})
            adjusted = holm({f"{r['a']}|{r['b']}": r["p"] for r in family})
            for r in family:
                r["p_holm"] = adjusted[f"{r['a']}|{r['b']}"]
                r["needed_for_p05"] = needed_label(r)
            sig += family
            if family:
                power.append(power_line(bench if len(ablations) == 1 else f"{ab['name']}/{bench}", family))
            line = synergy_line(bench, family)
            if line:
                synergy.append(line)
        for name, a in ab.get("adapters", {}).items():
            if not a.get("given"):
                training.append({"ablation": ab["name"], "adapter": name, "method": a.get("method"),
                                 "steps": a.get("steps"), "train_tokens": a.get("train_tokens"),
                                 "wall_s": a.get("wall_s"), "tokens_per_s": a.get("tokens_per_s"),
                                 "eval_loss_before": a.get("eval_loss_before"), "eval_loss_after": a.get("eval_loss_after"),
                                 "trainable_params": a.get("trainable_params")})
        for bench, r in ab.get("retrieval", {}).items():
            m = r["metrics"]
            retrieval.append({"ablation": ab["name"], "benchmark": bench, "index": r["index"], "method": r["method"],
                              "n_queries": r["n_queries"], **{k: m.get(k) for k in ("recall@1", "recall@5", "recall@10", "ndcg@10")}})
    return {"rows": rows, "significance": sig, "synergy": synergy, "power": power, "training": training,
            "retrieval": retrieval, "sandbox": sandbox}


def sandbox_lines(weaker: dict[str, list[str]]) -> list[str]:
    """The report's sandbox section: what it did not enforce, and where; or that every cell had it all."""
    if not weaker:
        return ["Every cell was scored with the sandbox's full isolation: an empty network namespace and its own "
                "unprivileged uid per worker slot."]
    return [f"- **Weaker:** {reason} ({len(cells)} cell(s): {', '.join(cells[:6])}{' ...' if len(cells) > 6 else ''})"
            for reason, cells in weaker.items()]


SMOKE_TASKS = 100  # fewer tasks than this on any benchmark: a smoke-size run


def benchmark_sizes(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Tasks scored per benchmark (the largest cell; DS-1000's per-library rows left out)."""
    sizes: dict[str, int] = {}
    for r in rows:
        if r.get("n_tasks") is not None:
            sizes[r["benchmark"]] = max(sizes.get(r["benchmark"], 0), int(r["n_tasks"]))
    return sizes


def smoke_line(sizes: dict[str, int], alpha: float = 0.05) -> str:
    """The warning at the top of a smoke-size run's report."""
    counts = sorted(set(sizes.values()))
    n = (f"{counts[0]}" if len(counts) == 1 else
         " / ".join(f"{v} ({k})" for k, v in sizes.items()))
    return (f"**Smoke-size run: {n} tasks per benchmark**; a check that the pipeline runs end to end, not evidence "
            f"for or against a method. A paired comparison needs at least {discordant_needed(alpha)} discordant tasks, "
            f"all in one direction, to reach p < {alpha:g} (McNemar exact) before the Holm correction, so only large, "
            "one-sided differences can be significant here.")


def needed_label(s: dict[str, Any], alpha: float = 0.05) -> str:
    """How many of a comparison's discordant tasks must favour one side for p < `alpha`: "7 of 8", or
    "unreachable (5 discordant)". A sampled comparison's p also depends on the sizes of its differences;
    its best case, every difference one way, is McNemar's (d, 0), so only reachability is stated."""
    discordant = s["only_a"] + s["only_b"]
    w = needed_in_one_direction(discordant, alpha)
    if s["test"] != MCNEMAR:
        return f"unreachable ({discordant} differing)" if w is None else f"depends on sizes ({discordant} differing)"
    return f"unreachable ({discordant} discordant)" if w is None else f"{w} of {discordant}"


def synergy_line(bench: str, family: list[dict[str, Any]]) -> str | None:
    """Is dora_rag better than both dora_only and rag_only, by how much, with the exact tests' raw and
    Holm-adjusted p-values? "Significant" means Holm-adjusted p < 0.05 against both."""
    pair = {r["b"]: r for r in family if r["a"] == "dora_rag" and r["b"] in ("dora_only", "rag_only")}
    if len(pair) < 2:
        return None
    d, r = pair["dora_only"], pair["rag_only"]
    better = d["diff"] > 0 and r["diff"] > 0
    significant = better and d["p_holm"] < 0.05 and r["p_holm"] < 0.05
    verdict = ("yes, and significant at 0.05 against both" if significant else
               "yes, but not significant at 0.05 against both" if better else "no")

    def against(s: dict[str, Any]) -> str:
        return f"{s['rate_b']:.3f}, {s['diff']:+.3f}, {s['test']} p={s['p']:.3g}, Holm {s['p_holm']:.3g}"

    return (f"{bench}: is dora_rag ({d['rate_a']:.3f}) better than both dora_only ({against(d)}) "
            f"and rag_only ({against(r)})? {verdict} (n={d['n_tasks']})")


def power_line(bench: str, family: list[dict[str, Any]], alpha: float = 0.05) -> str:
    """What a benchmark of this size can show: the fewest discordant tasks for p < `alpha`, raw and after
    Holm over the family, and for each comparison how many of its discordant tasks it would need."""
    n = max(s["n_tasks"] for s in family)
    d_raw, d_holm = discordant_needed(alpha), discordant_needed(alpha / len(family))
    if n < d_raw:
        return (f"{bench}: at n={n} tasks no comparison can reach p < {alpha:g}: McNemar's exact test needs at least "
                f"{d_raw} discordant tasks, all in one direction.")
    each = "; ".join(f"{s['a']} vs {s['b']}: {s['only_a'] + s['only_b']} discordant, "
                     + ("cannot reach" if s["needed_for_p05"].startswith("unreachable")
                        else f"needs {s['needed_for_p05']}" if s["test"] == MCNEMAR else "sampled, depends on sizes")
                     for s in family)
    return (f"{bench}: at n={n} tasks, a comparison needs at least {d_raw} discordant tasks, all in one direction, to "
            f"reach p < {alpha:g} (McNemar exact), and at least {d_holm} for the strongest of this benchmark's "
            f"{len(family)} comparisons (Holm multiplies its p by {len(family)}); with D discordant tasks it needs at least W "
            f"of them in one direction: {each}.")


# ------------------------------------------------------------------ tables

def _ks(rows: list[dict[str, Any]]) -> list[str]:
    ks = {k for r in rows for k in r if k.startswith("pass@") and not k.endswith("_ci")}
    return sorted(ks, key=lambda k: int(k.split("@")[1]))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def score_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    ks = _ks(rows)
    em = any("EM" in r for r in rows)  # text-to-SQL: pass@1 is execution accuracy (EX), EM is exact match
    header = ["benchmark", "condition", "tasks", *[h for k in ks for h in (k, f"{k} 95% CI")], *(["EM"] if em else [])]
    body = []
    for r in rows:
        cells = [r["benchmark"], r["condition"], _fmt(r["n_tasks"])]
        for k in ks:
            ci = r.get(f"{k}_ci")
            cells += [_fmt(r.get(k)), f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""]
        body.append(cells + ([_fmt(r.get("EM"))] if em else []))
    return header, body


def cost_table(ablations: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per cell: the score beside what it cost -- wall time (generation, retrieval and scoring), prompt and
    generated tokens, and the generation rate."""
    header = ["benchmark", "condition", "pass@1", "wall_s", "generate_s", "prompt_tokens", "generated_tokens",
              "tokens_per_s"]
    body = []
    for ab in ablations:
        for cell in ab["cells"]:
            f = {**(cell.get("figures") or {}), "wall_s": cell.get("wall_s"), **(cell.get("metrics") or {})}
            if f.get("prompt_tokens") in (None, 0) and cell.get("samples") and Path(cell["samples"]).is_file():
                n = sum(int(r.get("prompt_tokens") or 0) for r in read_jsonl(cell["samples"]))
                f["prompt_tokens"] = n or None  # samples from before dorag counted prompt tokens
            name = cell["condition"] if len(ablations) == 1 else f"{ab['name']}:{cell['condition']}"
            body.append([cell["benchmark"], name, _fmt(f.get("pass@1")), _fmt(f.get("wall_s"), 1),
                         _fmt(f.get("generate_s"), 1), _fmt(f.get("prompt_tokens")), _fmt(f.get("generated_tokens")),
                         _fmt(f.get("tokens_per_s"), 1)])
    return header, body


def loss_table(ablations: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Every logged training loss and eval loss of each trained adapter, by step (its run's metrics.jsonl)."""
    header = ["adapter", "step", "loss", "eval_loss"]
    body = []
    for ab in ablations:
        for name, a in ab.get("adapters", {}).items():
            log = Path(a.get("dir") or "") / "metrics.jsonl"
            if a.get("given") or not log.is_file():
                continue
            label = name if len(ablations) == 1 else f"{ab['name']}:{name}"
            seen: dict[tuple[int, str], float] = {}
            for rec in read_jsonl(log):
                for key in ("loss", "eval_loss"):
                    if isinstance(rec.get(key), (int, float)) and isinstance(rec.get("step"), int):
                        seen[(rec["step"], key)] = float(rec[key])  # a resumed run logs a step again: the last counts
            for step in sorted({st for st, _ in seen}):
                body.append([label, str(step), _fmt(seen.get((step, "loss")), 4), _fmt(seen.get((step, "eval_loss")), 4)])
    return header, body


def _relevant(bench: str, cache: dict[str, dict[str, dict[str, int]] | None]) -> dict[str, dict[str, int]] | None:
    """The benchmark's qrels (task -> relevant document ids), or None when it has none."""
    if bench not in cache:
        from dorag.core.errors import DoragError
        from dorag.experiments.indexing import benchmark_qrels

        try:
            cache[bench] = benchmark_qrels(bench)[1]
        except (DoragError, OSError, ImportError):
            cache[bench] = None
    return cache[bench]


def hit_table(ablations: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """For retrieval cells of benchmarks with relevance judgements: the pass rate when a relevant document
    reached the prompt (the sample's context_ids) and when none did -- whether a failure is the retriever's or
    the reader's."""
    header = ["benchmark", "condition", "tasks with a hit", "pass@1 with a hit", "tasks without", "pass@1 without"]
    body = []
    cache: dict[str, dict[str, dict[str, int]] | None] = {}
    for ab in ablations:
        for cell in ab["cells"]:
            if not cell.get("index") or not Path(cell.get("samples") or "").is_file() \
                    or not Path(cell.get("results") or "").is_file():
                continue
            rels = _relevant(cell["benchmark"], cache)
            if not rels:
                continue
            used = {r["task_id"]: r.get("context_ids") for r in read_jsonl(cell["samples"]) if r.get("sample_idx", 0) == 0}
            if not any(used.values()):
                continue
            passed = {}
            for r in read_jsonl(cell["results"]):
                passed.setdefault(r["task_id"], bool(r.get("passed")))
            groups: dict[bool, list[bool]] = {True: [], False: []}
            for task, ok in passed.items():
                relevant = {d.split("#")[0] for d in rels.get(task, {})}
                if not relevant:
                    continue
                hit = any(str(d).split("#")[0] in relevant for d in used.get(task) or [])
                groups[hit].append(ok)
            name = cell["condition"] if len(ablations) == 1 else f"{ab['name']}:{cell['condition']}"
            rate = lambda xs: _fmt(sum(xs) / len(xs)) if xs else ""  # noqa: E731
            body.append([cell["benchmark"], name, str(len(groups[True])), rate(groups[True]), str(len(groups[False])),
                         rate(groups[False])])
    return header, body


def sig_table(sig: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["benchmark", "A", "B", "tasks", "pass@1 A", "pass@1 B", "diff", "diff 95% CI", "A better", "B better",
              "test", "p", "p (Holm)", "needed for p<0.05"]
    body = [[s["benchmark"], s["a"], s["b"], str(s["n_tasks"]), _fmt(s["rate_a"]), _fmt(s["rate_b"]), f"{s['diff']:+.3f}",
             f"[{s['diff_ci'][0]:+.3f}, {s['diff_ci'][1]:+.3f}]", str(s["only_a"]), str(s["only_b"]),
             s["test"], f"{s['p']:.3g}", f"{s['p_holm']:.3g}", s["needed_for_p05"]]
            for s in sig]
    return header, body


def dict_table(rows: list[dict[str, Any]], skip: Sequence[str] = ("ablation",)) -> tuple[list[str], list[list[str]]]:
    if not rows:
        return [], []
    header = [k for k in rows[0] if k not in skip]
    return header, [[_fmt(r.get(k), 4) for k in header] for r in rows]


def markdown(header: list[str], body: list[list[str]]) -> str:
    if not header:
        return "(none)\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], body: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex(header: list[str], body: list[list[str]], caption: str) -> str:
    def esc(s: str) -> str:
        return "".join(_TEX.get(ch, ch) for ch in s)

    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
             " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ plots

def condition_colours(conds: Sequence[str]) -> dict[str, Any]:
    """One colour per condition, the same in every plot of a report (matplotlib's tab10, then tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(conds) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(conds)}


def _save(fig: Any, out: Path, stem: str, written: list[Path]) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"{stem}.{ext}", dpi=120)
        written.append(out / f"{stem}.{ext}")
    plt.close(fig)


def plots(result: dict[str, Any], out: Path, losses: tuple[list[str], list[list[str]]] | None = None,
          costs: tuple[list[str], list[list[str]]] | None = None) -> list[Path]:
    """conditions: pass@1 per condition and benchmark with 95% CIs; topk: pass@1 against the number of retrieved
    documents (k = 0 is the same adapter without retrieval); forest: every paired difference with its CI;
    loss: each adapter's training and eval loss by step; cost: pass@1 against each cell's wall time. PNG and SVG
    each, one colour per condition throughout."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = {r["benchmark"] for r in result["rows"]}
    # the per-level rows (unseen-api/single ...) are in the tables; the plots show each benchmark once
    level = lambda b: "/" in b and b.rsplit("/", 1)[0] in names  # noqa: E731
    rows = [r for r in result["rows"] if "pass@1" in r and r.get("n_tasks") is not None and not level(r["benchmark"])]
    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    conds = list(dict.fromkeys(r["condition"] for r in result["rows"]))
    colour = condition_colours(conds)
    written: list[Path] = []
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(conds) * len(benches)), 4))
    width = 0.8 / max(len(conds), 1)
    for i, cond in enumerate(conds):
        xs, ys, lo, hi = [], [], [], []
        for j, bench in enumerate(benches):
            r = next((r for r in rows if r["benchmark"] == bench and r["condition"] == cond), None)
            if r:
                xs.append(j + i * width)
                ys.append(r["pass@1"])
                lo.append(r["pass@1"] - r["pass@1_ci"][0])
                hi.append(r["pass@1_ci"][1] - r["pass@1"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=cond, color=colour[cond])
    ax.set_xticks([j + width * (len(conds) - 1) / 2 for j in range(len(benches))], benches)
    ax.set_ylabel("pass@1 (95% bootstrap CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=3)
    _save(fig, out, "conditions", written)
    series = {key: pts for key, pts in topk_series(result["rows"]).items() if not level(key[0])}
    if series:
        # an adapter's line takes the colour of its retrieval condition in the conditions plot (base: rag_only)
        rag_cond = {}
        for r in result["rows"]:
            if r.get("index") and r.get("top_k"):
                rag_cond.setdefault((r["benchmark"], r.get("adapter") or "base"), r["condition"])
        styles = ["-", "--", ":", "-."]
        fig, ax = plt.subplots(figsize=(6, 4))
        for (bench, adapter), points in sorted(series.items()):
            ks, ys = zip(*sorted(points))
            cond = rag_cond.get((bench, adapter.split(" / ")[0]))
            ax.plot(ks, ys, marker="o", linestyle=styles[benches.index(bench) % 4] if bench in benches else "-",
                    color=colour.get(cond) if cond else None, label=f"{bench} / {adapter}")
        ax.set_xlabel("retrieved documents (top-k; 0 = no retrieval)")
        ax.set_ylabel("pass@1")
        ax.legend(fontsize=8)
        _save(fig, out, "topk", written)
    sig = result.get("significance") or []
    if sig:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(sig) + 1.4))
        for i, s in enumerate(sig):
            y = len(sig) - 1 - i
            lo, hi = s["diff_ci"]
            ax.errorbar([s["diff"]], [y], xerr=[[s["diff"] - lo], [hi - s["diff"]]], fmt="o", capsize=3,
                        color=colour.get(s["a"]), markerfacecolor="white" if s["p_holm"] >= 0.05 else None)
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(range(len(sig)), [f"{s['benchmark']}: {s['a']} - {s['b']}" for s in reversed(sig)], fontsize=8)
        ax.set_xlabel("pass@1 difference, paired bootstrap 95% CI (filled: Holm p < 0.05)", fontsize=9)
        _save(fig, out, "forest", written)
    if losses and losses[1]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, name in enumerate(dict.fromkeys(r[0] for r in losses[1])):
            pts = [r for r in losses[1] if r[0] == name]
            train = [(int(r[1]), float(r[2])) for r in pts if r[2]]
            evals = [(int(r[1]), float(r[3])) for r in pts if r[3]]
            c = matplotlib.colormaps["tab10"](k % 10)
            if train:
                ax.plot(*zip(*train), color=c, label=f"{name} train")
            if evals:
                ax.plot(*zip(*evals), color=c, linestyle="--", marker="o", label=f"{name} eval")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (target tokens)")
        ax.legend(fontsize=8)
        _save(fig, out, "loss", written)
    if costs and costs[1]:
        pts = [(r[0], r[1], float(r[2]), float(r[3])) for r in costs[1] if r[2] and r[3]]
        if pts:
            markers = "osD^vP*X"
            fig, ax = plt.subplots(figsize=(6, 4))
            for bench, cond, score, wall in pts:
                ax.scatter([wall], [score], color=colour.get(cond.split(":")[-1]),
                           marker=markers[benches.index(bench) % len(markers)] if bench in benches else "o")
                ax.annotate(cond, (wall, score), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel("wall time of the cell (s): generation, retrieval, scoring")
            ax.set_ylabel("pass@1")
            _save(fig, out, "cost", written)
    return written


def topk_series(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(benchmark, adapter) -> [(k, pass@1)]: each adapter's retrieval cells by top-k, with k = 0 taken from the
    same adapter's cell without retrieval. Retrieval from another index is its own series ("dora / docs-dense").
    Where two cells share benchmark, adapter, index and k (a condition with other generation settings), the
    first one in the grid's order counts."""
    rag: dict[tuple[str, str, str], dict[int, float]] = {}
    plain: dict[tuple[str, str], float] = {}
    for r in rows:
        if "pass@1" not in r or r.get("n_tasks") is None or r.get("adapter") == UNKNOWN:
            continue
        adapter = r.get("adapter") or "base"
        if r.get("index") and r.get("top_k"):
            rag.setdefault((r["benchmark"], adapter, r["index"]), {}).setdefault(int(r["top_k"]), r["pass@1"])
        elif not r.get("index"):
            plain.setdefault((r["benchmark"], adapter), r["pass@1"])
    n_indexes = Counter((bench, adapter) for bench, adapter, _ in rag)
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for (bench, adapter, index), points in rag.items():
        pts = sorted(points.items())
        if (bench, adapter) in plain:
            pts = [(0, plain[(bench, adapter)]), *pts]
        if len(pts) > 1:
            series[(bench, adapter if n_indexes[(bench, adapter)] == 1 else f"{adapter} / {index}")] = pts
    return series


OUTCOMES = ("PASS", "FAIL", "RUNTIME_ERROR", "SYNTAX_ERROR", "TIMEOUT", "MEMORY")


def error_kind(detail: str) -> str:
    """A failure's kind, as a reader names it: the exception line, with quoted values and numbers kept (they
    say which API was missing), cut to one line of 100 characters."""
    lines = (detail or "").strip().splitlines()
    return lines[0][:100] if lines else ""


def _status(row: dict[str, Any]) -> str:
    """A result row's outcome; rows scored before statuses were recorded have only `passed`."""
    return row.get("status") or ("PASS" if row.get("passed") else "FAIL")


def outcome_table(ablations: Sequence[dict[str, Any]], top: int = 3) -> tuple[list[str], list[list[str]]]:
    """Per benchmark and condition: how many samples passed, failed a test, raised, did not parse, timed out or
    ran out of memory, and the most common error kinds -- whether an adaptation writes wrong code or broken code."""
    from collections import Counter

    header = ["benchmark", "condition", *OUTCOMES, "top errors"]
    body = []
    for ab in ablations:
        for cell in ab["cells"]:
            results = Path(cell.get("results") or "")
            if not results.is_file():
                continue
            rows = read_jsonl(results)
            counts = Counter(_status(r) for r in rows)
            kinds = Counter(error_kind(r["detail"]) for r in rows if _status(r) not in ("PASS", "FAIL") and r.get("detail"))
            errors = "; ".join(f"{k} ({n})" for k, n in kinds.most_common(top))
            name = cell["condition"] if len(ablations) == 1 else f"{ab['name']}:{cell['condition']}"
            body.append([cell["benchmark"], name, *(str(counts.get(o, 0)) for o in OUTCOMES), errors])
    return header, body


def task_table(ablations: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One row per benchmark task, one column per condition: the status of its sample (PASS, FAIL,
    RUNTIME_ERROR, ...), or correct/n where the cell sampled more than one. The discordant tasks behind
    every paired test, to read side by side."""
    columns: list[str] = []
    outcome: dict[tuple[str, str], dict[str, str]] = {}
    for ab in ablations:
        for cell in ab["cells"]:
            col = cell["condition"] if len(ablations) == 1 else f"{ab['name']}:{cell['condition']}"
            if col not in columns:
                columns.append(col)
            status: dict[str, str] = {}
            results = Path(cell.get("results") or "")
            if results.is_file():
                for row in read_jsonl(results):
                    status.setdefault(row["task_id"], _status(row))
            for task, v in read_json(cell["summary"]).get("per_task", {}).items():
                n, correct = v.get("n", 1), v.get("correct", 0)
                value = f"{correct}/{n}" if n > 1 else status.get(task) or ("PASS" if correct else "FAIL")
                outcome.setdefault((cell["benchmark"], task), {})[col] = value
    benches = list(dict.fromkeys(bench for bench, _ in outcome))

    def natural(key: tuple[str, str]) -> tuple[int, list[Any]]:  # HumanEval/2 before HumanEval/10
        return benches.index(key[0]), [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key[1])]

    body = [[bench, task, *[outcome[(bench, task)].get(c, "") for c in columns]] for bench, task in sorted(outcome, key=natural)]
    return ["benchmark", "task_id", *columns], body


# ------------------------------------------------------------------ the report

def write_report(paths: Sequence[str | Path], out: str | Path, n_boot: int = 10_000, seed: int = 0,
                 title: str | None = None, smoke: bool | None = None) -> dict[str, Any]:
    """Write every table, plot and the Markdown report into `out`; returns the analysis and file list.

    Args:
        smoke: whether this is a smoke-size run, said at the top of report.md; None: when any benchmark
            has fewer than SMOKE_TASKS tasks.
    """
    ablations = load_ablations(paths)
    result = analyse(ablations, n_boot=n_boot, seed=seed)
    sizes = benchmark_sizes(result["rows"])
    if smoke is None:
        smoke = any(n < SMOKE_TASKS for n in sizes.values())
    result["smoke"] = smoke
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def put(name: str, text: str) -> None:
        write_text_atomic(out / name, text)
        files.append(out / name)

    scores = score_table(result["rows"])
    sig = sig_table(result["significance"])
    train = dict_table(result["training"])
    retr = dict_table(result["retrieval"])
    put("results.csv", to_csv(*scores))
    put("results.md", markdown(*scores))
    put("results.tex", latex(*scores, caption="pass@k with bootstrap 95% confidence intervals"))
    put("significance.csv", to_csv(*sig))
    put("significance.md", markdown(*sig))
    put("significance.tex", latex(*sig, caption="Exact paired tests (McNemar for pass/fail, sign-flip for sampled cells), "
                                   "Holm-corrected per benchmark; paired-bootstrap 95% CI of the difference"))
    put("training.csv", to_csv(*train))
    put("retrieval.csv", to_csv(*retr))
    put("tasks.csv", to_csv(*task_table(ablations)))
    outcomes = outcome_table(ablations)
    put("outcomes.csv", to_csv(*outcomes))
    losses, costs, hits = loss_table(ablations), cost_table(ablations), hit_table(ablations)
    put("loss.csv", to_csv(*losses))
    put("cost.csv", to_csv(*costs))
    if hits[1]:
        put("retrieval_hits.csv", to_csv(*hits))
    figures = plots(result, out, losses, costs)
    files += figures
    name = title or ", ".join(a["name"] for a in ablations)
    md = [f"# dorag report: {name}", ""]
    if smoke:
        md += [smoke_line(sizes), ""]
    md += ["## Scores", "", markdown(*scores)]
    if result["synergy"]:
        md += ["## Synergy", "", *[f"- {line}" for line in result["synergy"]], ""]
    md += ["## Significance", "",
           "A against B on the tasks both were scored on, one exact two-sided test per row (column test). Pass/fail "
           "cells (every task 0 or 1): McNemar's exact test, a binomial test on the discordant tasks, those only one "
           "condition passes (A better, B better). Sampled cells (correct/n per task): the exact paired sign-flip "
           "permutation test on the per-task differences (A better, B better count the tasks each scored higher on); "
           "on pass/fail outcomes it is McNemar's test. p (Holm): Holm-corrected within each benchmark's comparisons. "
           f"diff 95% CI: the percentile interval of a paired bootstrap ({n_boot:,} resamples) of the difference in "
           "pass@1, an effect size with its uncertainty, not a test; the bootstrap's own p-value is left out, as it is "
           "anti-conservative when few tasks are discordant. needed for p<0.05: how many of the discordant tasks "
           "would have to favour one side. Each task's outcome under each condition is in tasks.csv.", "",
           *[f"- {line}" for line in result["power"]], "", markdown(*sig)]
    if outcomes[1]:
        md += ["## Outcomes", "", "Samples by outcome (FAIL: a test's assert failed; RUNTIME_ERROR: the code raised), "
               "and the most common errors of the code that did not run through.", "", markdown(*outcomes)]
    md += ["## Cost", "", "Each cell's score beside its cost: wall time (generation, retrieval and scoring), "
           "generation time, prompt and generated tokens, and generated tokens per second.", "", markdown(*costs)]
    md += ["## Sandbox", "", *sandbox_lines(result["sandbox"]), ""]
    if result["retrieval"]:
        md += ["## Retrieval", "", markdown(*retr)]
    if hits[1]:
        md += ["## Retrieval hit against pass", "", "Tasks whose prompt held at least one relevant document (by the "
               "benchmark's relevance judgements) against those whose prompt held none, and the pass rate of each: a "
               "task failed with a hit is the reader's failure, one without a hit may be the retriever's.", "",
               markdown(*hits)]
    if result["training"]:
        md += ["## Training", "", markdown(*train)]
    if figures:
        md += ["## Plots", "", *[f"![{f.stem}]({f.name})" for f in figures if f.suffix == ".svg"], ""]
    else:
        md += ["Plots need matplotlib: pip install 'dorag[report]'", ""]
    put("report.md", "\n".join(md))
    write_json(out / "report.json", {k: v for k, v in result.items()})
    files.append(out / "report.json")
    return {**result, "files": [str(f) for f in files], "report": str(out / "report.md")}
