"""Rows of a Hugging Face Hub dataset, for the loaders that accept a hub id besides a local file."""

from __future__ import annotations

from typing import Any

from dorag.core.errors import DataError
from dorag.core.require import require


def hub_rows(hub_id: str, config: str | None, split: str) -> list[tuple[int, dict[str, Any]]]:
    """[(row number, row)] of `hub_id`'s `split`, or a one-line error that names the offline fix."""
    datasets = require("datasets", extra="data")
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - network and hub errors vary by version
        raise DataError(
            f"could not load {hub_id} ({config or 'default'}/{split}) from the Hugging Face Hub "
            f"({type(exc).__name__}); offline, pass the official file with --benchmark-path"
        ) from exc
    return [(i + 1, dict(r)) for i, r in enumerate(ds)]
