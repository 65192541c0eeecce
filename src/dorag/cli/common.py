"""Shared CLI plumbing: config building from flags + YAML + overrides, progress bars, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from dorag.core.config import deep_merge, from_dict, load_yaml, parse_overrides

T = TypeVar("T")


def build_config(cls: type[T], config_file: str | None, flags: dict[str, Any], overrides: Sequence[str]) -> T:
    """Defaults, then the YAML file, then explicit flags, then dotted overrides (last wins)."""
    data: dict[str, Any] = load_yaml(config_file) if config_file else {}
    data = deep_merge(data, nest({k: v for k, v in flags.items() if v is not None}))
    data = deep_merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def env_defaults() -> dict[str, Any]:
    """Settings the CLI (never the library) takes from the environment."""
    flags: dict[str, Any] = {}
    if os.environ.get("DORAG_CACHE"):
        flags["model.cache_dir"] = os.environ["DORAG_CACHE"]
    if os.environ.get("OPENAI_API_KEY"):
        flags["model.api_key"] = os.environ["OPENAI_API_KEY"]
    return flags


def renamed(new: Any, old: Any, new_flag: str, old_flag: str) -> Any:
    """The value of a renamed flag: `new`, or the deprecated spelling's value with a one-line warning
    (the old spelling is kept for one release). Both at once is a usage error."""
    if old is None:
        return new
    if new is not None:
        from dorag.core.errors import ConfigError

        raise ConfigError(f"{old_flag} is the old spelling of {new_flag}; give only {new_flag}")
    echo(f"warning: {old_flag} is deprecated and will be removed in the next release; use {new_flag}")
    return old


def echo(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def progress_bar(desc: str, total: int | None = None, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr; yields an `update(done, total)` callback."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
               disable=os.environ.get("DORAG_NO_PROGRESS") == "1")

    def update(done: int, total_now: int) -> None:
        if bar.total != total_now:
            bar.total = total_now
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
