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


def model_card(name: str, adapter: dict[str, Any], metrics: dict[str, Any], base: str | None) -> str:
    lines = [f"# {name} adapter ({adapter.get('method', '?')})", "",
             f"Base model: `{base or 'unknown'}`. Trained with dorag: {adapter.get('steps')} steps, "
             f"eval loss {adapter.get('eval_loss_before')} -> {adapter.get('eval_loss_after')}.", "",
             "Load with `peft.PeftModel.from_pretrained(base_model, path)`.", ""]
    rows = [(bench, cond, m) for bench, conds in metrics.items() for cond, m in conds.items() if name in cond.split("_")]
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
    from dorag.models.registry import MODELS

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
        base = (config.get("_dorag") or {}).get("base_model")
        hub_base = MODELS[base].hf_id if base in MODELS else config.get("base_model_name_or_path")
        dest = export_adapter(src, Path(out) / name, hub_base)
        write_text_atomic(dest / "README.md", model_card(name, info, metrics, hub_base))
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
