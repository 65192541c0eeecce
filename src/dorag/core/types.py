"""Small value types shared across layers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """A raw completion prompt (`text`) or a chat (`messages`), optionally with the assistant's first words.

    `response_prefix` is appended after the assistant header, so the model continues it (e.g. an opened
    ```python fence); it is part of the answer and callers prepend it before post-processing.
    """

    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # ((role, content), ...)
    response_prefix: str = ""

    def __post_init__(self) -> None:
        if (self.text is None) == (self.messages is None):
            raise ValueError("a Prompt needs exactly one of text or messages")
