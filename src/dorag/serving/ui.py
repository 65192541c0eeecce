"""The web page at `/`: one self-contained HTML file (inline CSS and JS, no CDN: it works offline)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.lru_cache(maxsize=1)
def page() -> str:
    return resources.files("dorag.serving").joinpath("ui.html").read_text(encoding="utf-8")
