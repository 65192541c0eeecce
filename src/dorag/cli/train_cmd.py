"""`dorag train`: a LoRA, DoRA or QLoRA adapter."""

from __future__ import annotations

from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo, env_defaults


def train(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. training.learning_rate=1e-4"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config (configs/train-*.yaml)"),
    data: Optional[str] = typer.Option(None, help="training JSONL (dorag data prepare)"),
    eval_data: Optional[str] = typer.Option(None, help="held-out JSONL for eval loss"),
    model: Optional[str] = typer.Option(None, help="base model: registered name, path or hub id"),
    method: Optional[str] = typer.Option(None, help="lora, dora or qlora"),
    targets: Optional[str] = typer.Option(None, help="attention, mlp, all-linear or module names"),
    r: Optional[int] = typer.Option(None, "--r", help="rank"),
    alpha: Optional[float] = typer.Option(None, help="alpha"),
    name: Optional[str] = typer.Option(None, help="adapter name, e.g. code or docstring"),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides epochs)"),
    epochs: Optional[float] = typer.Option(None, help="epochs"),
    batch_size: Optional[int] = typer.Option(None, help="sequences per step"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate"),
    output_dir: Optional[str] = typer.Option(None, help="run directory"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint"),
) -> None:
    """Fine-tune an adapter; checkpoints every training.save_steps, --resume continues after a crash."""
    from dorag.core.seed import seed_everything
    from dorag.data.sft_data import load_examples, split
    from dorag.training.config import TrainConfig
    from dorag.training.sft import train_adapter

    flags = {**{k: v for k, v in env_defaults().items() if k == "model.cache_dir"},
             "data.train": data, "data.eval": eval_data, "model.name": model, "peft.method": method,
             "peft.targets": targets, "peft.r": r, "peft.alpha": alpha, "name": name,
             "training.max_steps": max_steps, "training.num_train_epochs": epochs,
             "training.batch_size": batch_size, "training.learning_rate": lr, "output_dir": output_dir,
             "resume": True if resume else None}
    cfg = build_config(TrainConfig, config, flags, overrides or [])
    seed_everything(cfg.seed)
    examples = load_examples(cfg.data.train, task=cfg.name)
    if cfg.data.limit:
        examples = examples[: cfg.data.limit]
    if cfg.data.eval:
        train_set, eval_set = examples, load_examples(cfg.data.eval, task=cfg.name)
    else:
        train_set, eval_set = split(examples, cfg.data.eval_fraction, cfg.seed)
    eval_set = eval_set[: cfg.data.max_eval_examples]
    res = train_adapter(cfg, train_set, eval_set, progress=echo)
    before = f"{res.eval_loss_before:.4f}" if res.eval_loss_before is not None else "n/a"
    after = f"{res.eval_loss_after:.4f}" if res.eval_loss_after is not None else "n/a"
    echo(f"{res.steps} steps, {res.train_tokens} tokens in {res.wall_s:.0f}s ({res.tokens_per_s:.0f} tokens/s), "
         f"peak RSS {res.peak_memory_mb:.0f} MiB, eval loss {before} -> {after}, "
         f"trainable {res.trainable_params:,} of {res.total_params:,}")
    print(res.adapter_dir)
