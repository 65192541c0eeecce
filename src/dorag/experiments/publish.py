"""`dorag publish`: export an ablation's adapters as PEFT directories with a model card; push to the
Hugging Face Hub only when a token is given (the CLI reads HF_TOKEN), and otherwise say so.

Run it after `dorag gate` passes (the DVC pipeline orders them so); nothing here re-checks the scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dorag.core.errors import DataError
from dorag.core.io import read_json, write_text_atomic
from dorag.core.require import require


# Hub dataset ids for the model-index, where the benchmark has one on the Hub; the rest are named as dorag's
_HUB_DATASETS = {"humaneval": "openai_humaneval", "mbpp": "mbpp", "ds1000": "xlangai/DS-1000", "spider": "spider"}


def hub_base_id(*names: str | None) -> str | None:
    """The Hub id of an adapter's base model, from what training recorded: a registered name (or its local
    cache directory) maps to the registry's Hub id, and a name shaped like ``owner/model`` that is not a local
    path is kept. None when no Hub id is known (a base trained from a local directory only)."""
    import re

    from dorag.models.registry import MODELS

    for name in names:
        if not name:
            continue
        if name in MODELS:
            return MODELS[name].hf_id
        if Path(name).name in MODELS:  # its local cache directory, e.g. ~/.cache/dorag/models/<name>
            return MODELS[Path(name).name].hf_id
        if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
            return name
    return None


def card_metadata(name: str, adapter: dict[str, Any], metrics: dict[str, Any], base: str | None,
                  conditions: set[str]) -> dict[str, Any]:
    """The model card's YAML front matter, in the Hub's schema: base model, library, tags and a model-index
    with every measured score of the `conditions` that used this adapter."""
    method = str(adapter.get("method") or "lora")
    meta: dict[str, Any] = {"library_name": "peft", "pipeline_tag": "text-generation",
                            "tags": sorted({"peft", method, "code", "dorag", "text-generation"})}
    if base:
        meta["base_model"] = base
    results = []
    for bench, conds in metrics.items():
        for cond, m in conds.items():
            if cond not in conditions or not isinstance(m.get("pass@1"), (int, float)):
                continue
            results.append({
                "task": {"type": "text-generation", "name": "Code generation"},
                "dataset": {"type": _HUB_DATASETS.get(bench, f"dorag/{bench}"), "name": bench},
                "metrics": [{"type": "pass@1", "value": round(float(m["pass@1"]), 4),
                             "name": f"pass@1 ({cond})", "verified": False}],
            })
    if results:
        meta["model-index"] = [{"name": name, "results": results}]
    return meta


def model_card(name: str, adapter: dict[str, Any], metrics: dict[str, Any], base: str | None,
               conditions: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """A Hugging Face model card: YAML front matter (`card_metadata`), then the text."""
    import yaml

    front = yaml.safe_dump(card_metadata(name, adapter, metrics, base, set(conditions)), sort_keys=False,
                           allow_unicode=True)
    lines = ["---", front.rstrip("\n"), "---", "",
             f"# {name} adapter ({adapter.get('method', '?')})", "",
             f"Base model: `{base or 'unknown'}`. Trained with dorag: {adapter.get('steps')} steps, "
             f"eval loss {adapter.get('eval_loss_before')} -> {adapter.get('eval_loss_after')}.", "",
             "```python",
             "from peft import AutoPeftModelForCausalLM",
             f"model = AutoPeftModelForCausalLM.from_pretrained(\"<this repo or directory>\")  # loads {base or 'the base'}",
             "```", ""]
    rows = [(bench, cond, m) for bench, conds in metrics.items() for cond, m in conds.items() if cond in conditions]
    if rows:
        lines += ["| benchmark | condition | pass@1 |", "|---|---|---|",
                  *[f"| {b} | {c} | {m.get('pass@1', float('nan')):.3f} |" for b, c, m in rows], ""]
    return "\n".join(lines)


def publish(ablation_dir: str | Path, out: str | Path, repo_prefix: str | None = None, token: str | None = None,
            private: bool = True, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Export every adapter of the ablation (and `extra` ones, name -> PEFT dir, e.g. the docstring adapter)
    to <out>/<name>; push each to <repo_prefix>-<name> when a token and a prefix are given. Returns one
    record per adapter (path, pushed url or why not)."""
    from dorag.models.adapters import check_adapter_dir, export_adapter

    ablation_dir = Path(ablation_dir)
    file = ablation_dir / "ablation.json"
    if not file.is_file():
        raise DataError(f"{ablation_dir}: no ablation.json; run dorag ablate first")
    from dorag.experiments.report import rebase

    ablation = rebase(read_json(file), ablation_dir)
    metrics = read_json(ablation_dir / "metrics.json") if (ablation_dir / "metrics.json").is_file() else {}
    records = []
    adapters = {**ablation.get("adapters", {}), **{n: {"dir": p, "given": True} for n, p in (extra or {}).items()}}
    for name, info in adapters.items():
        src = Path(info["dir"]) / "adapter" if not info.get("given") else Path(info["dir"])
        config = check_adapter_dir(src)
        hub_base = hub_base_id((config.get("_dorag") or {}).get("base_model"), config.get("base_model_name_or_path"))
        dest = export_adapter(src, Path(out) / name, hub_base)
        used = {c["condition"] for c in ablation.get("cells", []) if c.get("adapter") == name}
        write_text_atomic(dest / "README.md", model_card(name, info, metrics, hub_base, used))
        record: dict[str, Any] = {"adapter": name, "path": str(dest)}
        if token and repo_prefix:
            hub = require("huggingface_hub", extra="models")
            api = hub.HfApi(token=token)
            repo = f"{repo_prefix}-{name}"
            api.create_repo(repo, private=private, exist_ok=True)
            record["pushed"] = str(api.upload_folder(folder_path=str(dest), repo_id=repo))
        else:
            record["pushed"] = None
            record["why_not"] = "no HF token (set HF_TOKEN)" if not token else "no --repo-prefix given"
        records.append(record)
    if not records:
        raise DataError(f"{ablation_dir}: the ablation trained no adapters; nothing to publish")
    return records
