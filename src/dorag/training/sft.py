"""`dorag train`: LoRA, DoRA or QLoRA adapters with PEFT and the HF Trainer.

Checkpoints are written every `save_steps`; `resume=True` continues from the newest one (model,
optimizer, scheduler, RNG and data order), so a killed run redoes no finished step. The final adapter is
saved as a PEFT directory through a temp dir and an atomic rename: a crash never leaves a half-written
adapter where a complete one is expected.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dorag.core.errors import ConfigError, DataError, ModelError
from dorag.core.io import write_json
from dorag.core.require import require
from dorag.core.runs import RunDir
from dorag.models.positions import keep_last
from dorag.training.config import AdapterConfig, TrainConfig
from dorag.training.encoding import PadCollator, encode_all

log = logging.getLogger(__name__)
ADAPTER_DIR = "adapter"


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the model's nn.Linear layers (what `targets` may name), lm_head excluded."""
    torch = require("torch", extra="models")
    names = set()
    for full, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not full.endswith("lm_head"):
            names.add(full.rsplit(".", 1)[-1])
    return sorted(names)


def peft_config(cfg: AdapterConfig, model: Any) -> Any:
    """A peft.LoraConfig for `cfg`; unknown target modules are an error that lists the valid ones."""
    peft = require("peft", extra="train")
    targets = cfg.target_modules()
    if targets != "all-linear":
        valid = linear_module_names(model)
        unknown = [t for t in targets if t not in valid]
        if unknown:
            raise ConfigError(f"peft.targets: unknown module(s) {', '.join(unknown)}; this model's linear modules "
                              f"are: {', '.join(valid)} (or use a preset: attention, mlp, all-linear)")
    return peft.LoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
        use_dora=cfg.method == "dora", bias="none", task_type="CAUSAL_LM",
    )


def _precision(requested: str, torch: Any) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def load_base_for_training(cfg: TrainConfig) -> tuple[Any, Any]:
    """The base model (4-bit NF4 for qlora) and tokenizer, ready for adapters."""
    torch = require("torch", extra="models")
    transformers = require("transformers", extra="models")
    from dorag.models import registry
    from dorag.models.loading import hub_options, load_errors

    location, gguf = registry.resolve(cfg.model.name, cfg.model.cache_dir)
    extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    extra.update(hub_options(cfg.model.name, location))
    with load_errors(cfg.model.name, location, extra):
        tok = transformers.AutoTokenizer.from_pretrained(location, **extra)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.peft.method == "qlora":
        require("bitsandbytes", extra="qlora")
        compute = torch.bfloat16 if _precision(cfg.training.precision, torch) in ("bf16", "fp32") else torch.float16
        extra["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute)
        dtype = compute
    else:
        prec = _precision(cfg.training.precision, torch)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float32}[prec]  # fp16: AMP over fp32
    try:
        with load_errors(cfg.model.name, location, extra):
            model = transformers.AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **extra)
    except (ValueError, RuntimeError, ImportError) as exc:
        if cfg.peft.method == "qlora":
            raise ModelError(f"4-bit QLoRA could not load on this machine ({str(exc).splitlines()[0]}); "
                             "use peft.method=lora") from exc
        raise
    if cfg.peft.method == "qlora":
        peft = require("peft", extra="train")
        bnb = require("bitsandbytes", extra="qlora")
        for module in model.modules():
            if isinstance(module, bnb.nn.Linear4bit):
                # An eval pass (eval loss before training) would repack the weights into bitsandbytes'
                # CPU inference layout, which its training path cannot use; keep the trainable layout.
                module.support_avx512bf16_for_cpu = False
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.training.gradient_checkpointing)
    return model, tok


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    train_tokens: int  # over all steps, a resumed run's earlier ones included
    wall_s: float  # this run's training time
    tokens_per_s: float  # tokens of this run's steps / wall_s
    peak_memory_mb: float
    eval_loss_before: float | None
    eval_loss_after: float | None
    trainable_params: int
    total_params: int


class _RunLogger:
    """A TrainerCallback that mirrors the Trainer's logs into the run directory's metrics.jsonl."""

    def __new__(cls, run: RunDir, progress: Callable[[str], None] = lambda m: None) -> Any:
        transformers = require("transformers", extra="models")

        class Callback(transformers.TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
                numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
                if not numbers:
                    return
                run.log(step=state.global_step, **numbers)
                shown = {k: v for k, v in numbers.items() if k in ("loss", "eval_loss")}
                if shown:
                    progress(f"step {state.global_step}" + (f"/{state.max_steps}" if state.max_steps else "") + ": "
                             + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))

        return Callback()


def target_logits_trainer() -> type:
    """A Trainer that computes the output layer only where the loss needs it: from the position before the
    batch's first target token to the end (`logits_to_keep`), with the labels sliced to match.

    The prompt is most of an example (with retrieved documents, ~600 of ~800 tokens) and the output layer is
    the largest matmul of a small model (151,936 x 896 for Qwen2.5-0.5B): its logits and their gradients for
    the prompt are pure waste -- 21 GiB for four 1,280-token rows. The loss is the same (the causal LM loss
    shifts labels by one, so the kept logits at positions T-K..T-2 predict labels T-K+1..T-1, which hold every
    target token); tests/unit/test_training.py checks loss and gradients against the plain Trainer.
    """
    transformers = require("transformers", extra="models")
    from dorag.training.encoding import IGNORE

    class TargetLogitsTrainer(transformers.Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels = inputs.get("labels")
            if labels is not None and "position_ids" not in inputs:
                has = labels != IGNORE  # (B, T)
                rows = has.any(dim=1)
                if bool(rows.any()):
                    width = labels.shape[1]
                    first = int(has.float().argmax(dim=1)[rows].min())  # earliest target token in the batch
                    keep = width - first + 1
                    inputs = {**inputs, "labels": labels[:, width - keep:],
                              "logits_to_keep": keep_last(width, keep, labels.device)}
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return TargetLogitsTrainer


def _peak_memory_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def last_checkpoint(output_dir: Path) -> Path | None:
    ckpts = sorted((p for p in (output_dir / "checkpoints").glob("checkpoint-*") if p.is_dir()),
                   key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(ckpts):  # a checkpoint cut off mid-write lacks trainer_state.json: skip it
        if (ckpt / "trainer_state.json").is_file():
            return ckpt
    return None


def train_adapter(cfg: TrainConfig, train_examples: list[dict], eval_examples: list[dict],
                  progress: Callable[[str], None] = lambda m: None) -> TrainResult:
    """Train one adapter; returns the figures the acceptance criteria ask for."""
    torch = require("torch", extra="models")
    transformers = require("transformers", extra="models")
    peft = require("peft", extra="train")
    from dorag.core.seed import seed_everything

    if not train_examples:
        raise DataError("no training examples (empty dataset)")
    out = Path(cfg.resolved_output_dir())
    if out.exists() and (out / "checkpoints").exists() and not cfg.resume and last_checkpoint(out):
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue or choose another output_dir")
    seed_everything(cfg.seed)
    model, tok = load_base_for_training(cfg)
    lora = peft_config(cfg.peft, model)
    model = peft.get_peft_model(model, lora, adapter_name=cfg.name)
    trainable, total = model.get_nb_trainable_parameters()
    tcfg = cfg.training
    if tcfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    train_ds = encode_all(tok, train_examples, tcfg.max_seq_len, cfg.prompt, cfg.rag)
    eval_ds = encode_all(tok, eval_examples, tcfg.max_seq_len, cfg.prompt, cfg.rag)
    if not train_ds:
        raise DataError(f"every training example lost its answer to truncation at max_seq_len={tcfg.max_seq_len}; "
                        "raise training.max_seq_len")
    if len(train_ds) < len(train_examples):
        progress(f"{len(train_examples) - len(train_ds)} example(s) dropped: prompt longer than max_seq_len")
    train_tokens_epoch = sum(len(x["input_ids"]) for x in train_ds)
    collator = (transformers.DataCollatorWithFlattening(return_position_ids=True) if tcfg.packing
                else PadCollator(tok.pad_token_id))
    prec = _precision(tcfg.precision, torch)
    run = RunDir.start(out, cfg, stage="train", seed=cfg.seed)
    args = transformers.TrainingArguments(
        output_dir=str(out / "checkpoints"),
        learning_rate=tcfg.learning_rate, lr_scheduler_type=tcfg.lr_scheduler, warmup_steps=tcfg.warmup_ratio,  # < 1: a ratio
        num_train_epochs=tcfg.num_train_epochs, max_steps=tcfg.max_steps,
        per_device_train_batch_size=tcfg.batch_size, per_device_eval_batch_size=tcfg.batch_size,
        gradient_accumulation_steps=tcfg.gradient_accumulation_steps, weight_decay=tcfg.weight_decay,
        max_grad_norm=tcfg.max_grad_norm, logging_steps=tcfg.logging_steps,
        eval_strategy="steps" if eval_ds else "no", eval_steps=tcfg.eval_steps,
        save_strategy="steps", save_steps=tcfg.save_steps, save_total_limit=tcfg.save_total_limit,
        bf16=prec == "bf16", fp16=prec == "fp16",  # bf16 on CPU: autocast, fast on AMX/AVX512-BF16 cores
        use_cpu=not torch.cuda.is_available(), seed=cfg.seed, data_seed=cfg.seed, report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=False,
        train_sampling_strategy="group_by_length" if tcfg.group_by_length else "random",
        # QLoRA on GPU: paged 8-bit AdamW (QLoRA paper sec. 3); else the Trainer's default (fused AdamW).
        **({"optim": "paged_adamw_8bit"} if cfg.peft.method == "qlora" and torch.cuda.is_available() else {}),
    )
    trainer_cls = transformers.Trainer if tcfg.packing else target_logits_trainer()
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds or None,
                          data_collator=collator, callbacks=[_RunLogger(run, progress)])
    for callback in trainer.callback_handler.callbacks:  # the bars stay; the log dicts go to metrics.jsonl, not stdout
        if isinstance(callback, (transformers.trainer_callback.ProgressCallback, transformers.trainer_callback.PrinterCallback)):
            callback.on_log = lambda *a, **k: None
    before = None
    resume_from = last_checkpoint(out) if cfg.resume else None
    if eval_ds and resume_from is None:
        before = float(trainer.evaluate()["eval_loss"])
        run.log(step=0, eval_loss=before)
    elif resume_from is not None:
        prior = [m for m in run.metrics() if m.get("step") == 0 and "eval_loss" in m]
        before = prior[0]["eval_loss"] if prior else None
        progress(f"resuming from {resume_from.name}")
    t0 = time.perf_counter()
    state = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall = time.perf_counter() - t0
    after = float(trainer.evaluate()["eval_loss"]) if eval_ds else None
    steps = trainer.state.global_step
    per_step = tcfg.batch_size * tcfg.gradient_accumulation_steps
    seen_examples = min(steps * per_step, len(train_ds) * math.ceil(max(tcfg.num_train_epochs, 1)))
    per_example = train_tokens_epoch / len(train_ds)
    tokens = int(per_example * seen_examples)
    # A resumed run only paid for the steps after its checkpoint: throughput counts those alone.
    start_step = int(resume_from.name.rsplit("-", 1)[-1]) if resume_from else 0
    run_tokens = int(per_example * max(0, seen_examples - min(start_step * per_step, seen_examples)))
    adapter_dir = save_adapter(model, tok, out, cfg.name)
    from dorag.models.adapters import write_adapter_meta

    write_adapter_meta(adapter_dir, model, cfg.model.name, cfg.peft.method, name=cfg.name, targets=cfg.peft.targets,
                       r=cfg.peft.r, alpha=cfg.peft.alpha)
    result = TrainResult(adapter_dir, steps, tokens, wall, run_tokens / wall if wall > 0 else 0.0, _peak_memory_mb(),
                         before, after, int(trainable), int(total))
    summary = {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}
    summary.update(train_loss=state.training_loss, method=cfg.peft.method, targets=cfg.peft.targets,
                   resumed_from=resume_from.name if resume_from else None)
    write_json(out / "train_summary.json", summary)
    run.log(**{k: v for k, v in summary.items() if isinstance(v, (int, float))})
    run.finish()
    return result


def save_adapter(model: Any, tokenizer: Any, out: Path, name: str) -> Path:
    """Write the PEFT adapter to out/adapter via a temp dir and an atomic rename."""
    final = out / ADAPTER_DIR
    tmp = out / f".{ADAPTER_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), selected_adapters=[name])
    # PEFT writes non-default adapters into a subdirectory named after them; flatten to one PEFT dir.
    nested = tmp / name
    if nested.is_dir():
        for f in nested.iterdir():
            os.replace(f, tmp / f.name)
        nested.rmdir()
    tokenizer.save_pretrained(str(tmp))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final
