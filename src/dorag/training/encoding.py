"""Training examples -> token ids with the prompt masked out of the loss.

Two kinds of example reach the trainer:

- **problem form** (``{"problem", "target", "docs"?}``, what `dorag data prepare` writes for code tasks): the
  prompt is rendered by the very functions that render an evaluation prompt -- `data.prompts.build_prompt`
  (instruction, RAG frame), `retrieval.assemble.assemble_context` (the same token budget and document order)
  and `models.hf.render_prompt` (chat template and assistant pre-fill) -- so the prompt tokens an adapter is
  trained on are the tokens it is evaluated on, token for token; the target is `data.prompts.answer_text`:
  the code and the closing fence the harness stops at, then the template's end of turn.
- **messages** (instruction sets: CodeAlpaca, Magicoder, prompt/completion pairs, the docstring task): the
  chat template up to the assistant header is the prompt, the rest of the conversation is the target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dorag.core.errors import DataError
from dorag.data.prompts import PromptConfig, answer_text, build_prompt, resolve_style
from dorag.models.hf import render_prompt
from dorag.retrieval.assemble import RagConfig, assemble_context

IGNORE = -100  # label ignored by the cross-entropy loss


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens of a text as the generator counts them (experiments.generate.token_counter does the same)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def example_context(tokenizer: Any, docs: Sequence[dict[str, Any]] | None, rag: RagConfig) -> tuple[str | None, list[str]]:
    """The retrieved-documents block of a problem-form example, assembled as RAG inference assembles it."""
    if not docs:
        return None, []
    context, used = assemble_context(docs, token_counter(tokenizer), rag.budget_tokens, rag.order, rag.min_tokens)
    return context or None, used


def render_example(tokenizer: Any, ex: dict[str, Any], prompt_cfg: PromptConfig | None = None,
                   rag: RagConfig | None = None) -> tuple[str, str]:
    """(prompt text, target text) of a problem-form example: the prompt exactly as `dorag generate` renders
    the same problem with the same documents, and the answer the adapter should learn to write after it."""
    prompt_cfg = prompt_cfg or PromptConfig()
    rag = rag or RagConfig()
    style = resolve_style(prompt_cfg, bool(getattr(tokenizer, "chat_template", None)))
    context, _ = example_context(tokenizer, ex.get("docs"), rag)
    prompt = build_prompt(ex["problem"], prompt_cfg, style, context=context)
    text = render_prompt(tokenizer, prompt)
    answer = answer_text(ex["problem"], ex["target"], prompt_cfg, style)
    if style == "completion":
        return text, answer + (tokenizer.eos_token or "")
    # The template's own end of turn after the answer: render the whole conversation and take what follows the
    # prompt (the answer starts with the pre-fill the prompt already ends with).
    messages = [{"role": r, "content": c} for r, c in prompt.messages or ()]
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(text):
        raise DataError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
    return text, full[len(text):]


def _messages_parts(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, str]:
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(list(messages), tokenize=False)
        if not full.startswith(prompt):
            raise DataError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
        return prompt, full[len(prompt):]
    prompt = "\n".join(m["content"] for m in messages[:-1]) + "\n"
    return prompt, messages[-1]["content"] + (tokenizer.eos_token or "")


def encode_example(tokenizer: Any, ex: dict[str, Any] | Sequence[dict[str, str]], max_len: int,
                   prompt_cfg: PromptConfig | None = None, rag: RagConfig | None = None) -> dict[str, list[int]]:
    """input_ids and labels for one example (problem form or messages): only the answer is learned.

    The prompt and the answer are tokenized apart, the prompt as the generator tokenizes it, so that the
    prompt ids are the ids of inference and no token straddles the boundary.
    """
    if isinstance(ex, dict) and "problem" in ex:
        prompt, answer = render_example(tokenizer, ex, prompt_cfg, rag)
    else:
        prompt, answer = _messages_parts(tokenizer, ex["messages"] if isinstance(ex, dict) else ex)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = (p_ids + a_ids)[:max_len]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_len]
    return {"input_ids": ids, "labels": labels}


def encode_all(tokenizer: Any, examples: Sequence[dict], max_len: int, prompt_cfg: PromptConfig | None = None,
               rag: RagConfig | None = None) -> list[dict[str, list[int]]]:
    """Encode examples; drop those whose answer was truncated away entirely (nothing to learn)."""
    out = []
    for ex in examples:
        enc = encode_example(tokenizer, ex, max_len, prompt_cfg, rag)
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
