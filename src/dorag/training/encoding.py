"""Chat-formatted SFT examples -> token ids with the prompt masked out of the loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dorag.core.errors import DataError

IGNORE = -100  # label ignored by the cross-entropy loss


def encode_example(tokenizer: Any, messages: Sequence[dict[str, str]], max_len: int) -> dict[str, list[int]]:
    """input_ids and labels for one conversation: only the final assistant turn is learned.

    With a chat template, the prompt is the template up to the assistant header (add_generation_prompt)
    and the target is the rest of the fully templated conversation (answer + end-of-turn token). Without
    one, the prompt is the user text and the answer is followed by EOS.
    """
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(list(messages), tokenize=False)
        if not full.startswith(prompt):
            raise DataError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
        answer = full[len(prompt):]
    else:
        prompt = "\n".join(m["content"] for m in messages[:-1]) + "\n"
        answer = messages[-1]["content"] + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = (p_ids + a_ids)[:max_len]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}


def encode_all(tokenizer: Any, examples: Sequence[dict], max_len: int) -> list[dict[str, list[int]]]:
    """Encode examples; drop those whose answer was truncated away entirely (nothing to learn)."""
    out = []
    for ex in examples:
        enc = encode_example(tokenizer, ex["messages"], max_len)
        if any(label != IGNORE for label in enc["labels"]):
            out.append(enc)
    return out


class PadCollator:
    """Right-pad a batch: pad ids, attention mask 0, labels IGNORE."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)  # (B, T)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}
