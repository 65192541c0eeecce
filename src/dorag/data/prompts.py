"""Benchmark prompts for instruct (chat template) and base (raw completion) models.

Prompt format dominates code-benchmark scores. For instruct models we follow EvalPlus: ask for a
self-contained solution in a markdown block and pre-fill the assistant's answer with an opened
```python fence, so the model writes code at once and the closing fence is a reliable stop. Base models
continue the raw HumanEval prompt and stop at the next top-level statement (Codex paper, sec. 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.types import Prompt

INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:\n```python\n"
)
CHAT_STOPS: tuple[str, ...] = ("\n```",)
# Codex paper sec. 2.1 stop sequences for raw function-body completion.
COMPLETION_STOPS: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


@dataclass
class PromptConfig:
    """How benchmark problems become model prompts."""

    style: Literal["auto", "chat", "completion"] = option(
        "auto", "chat uses the model's chat template; completion continues the raw prompt; auto picks by model"
    )
    system: str | None = option(None, "system message for chat prompts (default: the template's own)")
    instruction: str = option(INSTRUCTION, "text before the problem in chat prompts")
    response_prefix: str = option(RESPONSE_PREFIX, "assistant pre-fill; must end with an opened ``` fence")


def resolve_style(cfg: PromptConfig, has_chat_template: bool) -> Literal["chat", "completion"]:
    if cfg.style == "auto":
        return "chat" if has_chat_template else "completion"
    return cfg.style


def build_prompt(problem: dict[str, Any], cfg: PromptConfig, style: Literal["chat", "completion"],
                 context: str | None = None) -> Prompt:
    """The prompt for one HumanEval-format problem; `context` (retrieved code) goes before the task."""
    if problem.get("harness") == "sql":
        return sql_prompt(problem, cfg, style, context)
    if style == "completion":
        return Prompt(text=with_context_comment(problem["prompt"], context))
    body = with_context_chat(f"{cfg.instruction}\n```python\n{problem['prompt'].strip()}\n```\n", context)
    messages: list[tuple[str, str]] = []
    if cfg.system:
        messages.append(("system", cfg.system))
    messages.append(("user", body))
    return Prompt(messages=tuple(messages), response_prefix=cfg.response_prefix)


SQL_INSTRUCTION = "Write one SQLite query that answers the question. Use only the tables and columns below."
SQL_RESPONSE_PREFIX = "```sql\n"


def sql_prompt(problem: dict[str, Any], cfg: PromptConfig, style: Literal["chat", "completion"],
               context: str | None = None) -> Prompt:
    """Text-to-SQL: the question under the schema. `context` (retrieved table snippets) replaces the
    full schema; that is the schema-retrieval condition. Chat answers are pre-filled with a ```sql fence."""
    schema = context or problem.get("schema", "")
    if style == "completion":
        return Prompt(text=f"-- SQLite schema\n{schema}\n\n-- Question: {problem['prompt'].strip()}\n-- SQL:\n")
    body = f"{SQL_INSTRUCTION}\n\n{schema}\n\nQuestion: {problem['prompt'].strip()}\n"
    messages: list[tuple[str, str]] = [("system", cfg.system)] if cfg.system else []
    messages.append(("user", body))
    return Prompt(messages=tuple(messages), response_prefix=SQL_RESPONSE_PREFIX)


def with_context_chat(user: str, context: str | None) -> str:
    """A user turn with retrieved code in front of it (the frame RAG prompts and RAG fine-tuning share)."""
    return f"Relevant code and documentation:\n{context}\n\n{user}" if context else user


def with_context_comment(text: str, context: str | None) -> str:
    """A raw completion prompt with retrieved code in front of it, as comment lines (it stays valid code)."""
    if not context:
        return text
    return "".join(f"# {line}\n" for line in context.splitlines()) + "\n" + text


def stops_for(style: Literal["chat", "completion"]) -> tuple[str, ...]:
    return CHAT_STOPS if style == "chat" else COMPLETION_STOPS


def answer_text(problem: dict[str, Any], target: str, cfg: PromptConfig, style: Literal["chat", "completion"]) -> str:
    """What the model should write after `build_prompt(problem, ...)` for the complete solution `target`.

    Chat: the assistant pre-fill, the code and the closing fence that `CHAT_STOPS` stops at (the chat template
    adds its end-of-turn after it). Completion: the body that continues the raw prompt, so `target` must start
    with the problem's prompt. Training renders its targets with this function and inference stops at the
    same place, so an adapter learns to end where the harness cuts.
    """
    if style == "completion":
        if not target.startswith(problem["prompt"]):
            raise ValueError(f"{problem.get('task_id', '?')}: for a completion-style prompt the target must start "
                             "with the problem's prompt")
        return target[len(problem["prompt"]):]
    return f"{cfg.response_prefix}{target.rstrip()}{CHAT_STOPS[0]}"


DOC_INSTRUCTION = "Write the docstring for the following Python function. Reply with the docstring text only."
DOC_STYLE_HINT = {
    "google": "Use Google style: a one-line summary, then Args:, Returns: and Raises: sections as needed.",
    "numpy": "Use NumPy style: a one-line summary, then Parameters and Returns sections underlined with dashes.",
}


def docstring_prompt(code: str, style: str | None = None) -> Prompt:
    """The docstring task's own prompt, for its training pairs and for `dorag docstring` alike: the
    instruction, the style hint (google or numpy; none for a plain docstring) and the undocumented code."""
    hint = f" {DOC_STYLE_HINT[style]}" if style in DOC_STYLE_HINT else ""
    return Prompt(messages=(("user", f"{DOC_INSTRUCTION}{hint}\n```python\n{code}```"),))
