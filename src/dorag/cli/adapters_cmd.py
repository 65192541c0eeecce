"""`dorag adapters merge|export`."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(help="Merge or export trained adapters.", no_args_is_help=True)


@app.command("merge")
def merge(
    adapter: str = typer.Argument(..., help="PEFT adapter directory"),
    out: str = typer.Option(..., "--out", help="directory for the merged checkpoint"),
    model: Optional[str] = typer.Option(None, help="base model (default: the one the adapter was trained on)"),
) -> None:
    """Fold the adapter into the base weights (works for LoRA and DoRA) and save a plain checkpoint."""
    from dorag.models.adapters import check_adapter_dir, merge_adapter
    from dorag.models.loading import ModelConfig, load_transformers

    info = check_adapter_dir(adapter)
    base = model or info["_dorag"].get("base_model") or info.get("base_model_name_or_path")
    m, tok = load_transformers(ModelConfig(name=base))
    print(merge_adapter(m, adapter, out, tok))


@app.command("export")
def export(
    adapter: str = typer.Argument(..., help="PEFT adapter directory"),
    out: str = typer.Option(..., "--out", help="destination PEFT directory"),
    base_model_id: Optional[str] = typer.Option(None, help="hub id to record as the base (for peft/vLLM users)"),
) -> None:
    """Write a clean PEFT directory (adapter_config.json + adapter_model.safetensors)."""
    from dorag.models.adapters import check_adapter_dir, export_adapter
    from dorag.models.registry import MODELS

    info = check_adapter_dir(adapter)
    base = info["_dorag"].get("base_model")
    hub = base_model_id or (MODELS[base].hf_id if base in MODELS else None)
    print(export_adapter(adapter, out, hub))
