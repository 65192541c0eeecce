"""Configs for adapter training. One dataclass per concern, composed into TrainConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dorag.core.config import at_least_one, option
from dorag.data.prompts import PromptConfig
from dorag.models.loading import ModelConfig
from dorag.retrieval.assemble import RagConfig

# Target module presets (names of nn.Linear leaves in Llama/Qwen/Mistral-style decoders).
TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}


@dataclass
class AdapterConfig:
    """Which adapter to train and where it attaches."""

    method: Literal["lora", "dora", "qlora"] = option("lora", "lora, dora (weight-decomposed LoRA) or qlora (4-bit base)")
    targets: str = option("attention", "attention, mlp, all-linear, or comma-separated module names")
    r: int = option(16, "adapter rank")
    alpha: float = option(32.0, "scaling numerator: the update is scaled by alpha / r (LoRA paper sec. 4.1)")
    dropout: float = option(0.0, "dropout on the adapter input; above 0, PEFT's DoRA runs every adapted layer's base "
                                 "matmul a second time on the dropped-out input (measured: DoRA trains at 102 instead of "
                                 "145 tokens/s at 0.05), so the default is 0 for every method")

    def check(self) -> list[str]:
        problems = []
        if self.r < 1:
            problems.append(f"r: must be at least 1, got {self.r}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if not self.targets.strip():
            problems.append("targets: give a preset (attention, mlp, all-linear) or module names")
        return problems

    def target_modules(self) -> list[str] | str:
        if self.targets == "all-linear":
            return "all-linear"
        if self.targets in TARGET_PRESETS:
            return list(TARGET_PRESETS[self.targets])
        return [t.strip() for t in self.targets.split(",") if t.strip()]


@dataclass
class DataConfig:
    """Training data: a prepared JSONL (dorag data prepare) or built on the fly from Python source."""

    train: str | None = option(None, "training JSONL (chat messages, CodeAlpaca, Magicoder or prompt/completion)")
    eval: str | None = option(None, "held-out JSONL; default: eval_fraction of train")
    eval_fraction: float = option(0.05, "share of train held out for eval loss when no eval file is given")
    max_eval_examples: int = option(64, "cap on eval examples (eval loss runs on CPU too)")
    limit: int | None = option(None, "use only the first N training examples")

    def check(self) -> list[str]:
        return [] if 0 <= self.eval_fraction < 1 else [f"eval_fraction: must be in [0, 1), got {self.eval_fraction}"]


@dataclass
class TrainingConfig:
    """Optimisation and checkpointing (passed to the HF Trainer)."""

    learning_rate: float = option(2e-4, "peak learning rate")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = option("cosine", "schedule")
    warmup_ratio: float = option(0.03, "share of steps spent warming up")
    num_train_epochs: float = option(1.0, "epochs (ignored when max_steps > 0)")
    max_steps: int = option(-1, "stop after this many optimizer steps (> 0 overrides epochs)")
    batch_size: int = option(4, "sequences per device per step")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step")
    max_seq_len: int = option(512, "tokens per example; longer ones are truncated")
    packing: bool = option(False, "pack examples into rows without padding (position ids reset per example)")
    group_by_length: bool = option(False, "batch examples of similar length together (less padding when examples "
                                   "with and without retrieved documents are mixed)")
    gradient_checkpointing: bool = option(False, "recompute activations to save memory")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option("auto", "auto: bf16 on a bf16 GPU, fp16 on other GPUs, fp32 on CPU")
    logging_steps: int = option(5, "log loss every N steps")
    eval_steps: int = option(50, "eval loss every N steps")
    save_steps: int = option(50, "checkpoint every N steps (the unit of --resume)")
    save_total_limit: int = option(2, "checkpoints kept")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient clipping")

    def check(self) -> list[str]:
        problems = []
        problems += at_least_one(self, ("batch_size", "gradient_accumulation_steps", "max_seq_len", "logging_steps",
                                        "eval_steps", "save_steps"))
        if self.learning_rate <= 0:
            problems.append(f"learning_rate: must be positive, got {self.learning_rate}")
        return problems


@dataclass
class TrainConfig:
    """`dorag train`: one adapter on one base model."""

    name: str = option("code", "adapter name (used when several adapters share one base)")
    output_dir: str | None = option(None, "run directory (default runs/train-<name>-<method>)")
    resume: bool = option(False, "continue from the last checkpoint in output_dir")
    seed: int = option(0, "seed")
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: AdapterConfig = field(default_factory=AdapterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    # Problem-form examples are rendered with the evaluation prompt: these must be the settings the adapter
    # is evaluated with (`dorag ablate` copies its own prompt and rag sections here).
    prompt: PromptConfig = field(default_factory=PromptConfig)
    rag: RagConfig = field(default_factory=RagConfig)

    def check(self) -> list[str]:
        return [] if self.data.train else ["data.train: give a training JSONL (see `dorag data prepare`)"]

    def resolved_output_dir(self) -> str:
        return self.output_dir or f"runs/train-{self.name}-{self.peft.method}"
