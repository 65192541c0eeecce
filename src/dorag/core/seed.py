"""Seed every random number generator that is loaded."""

from __future__ import annotations

import random
import sys


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if already imported) torch; importing torch here would cost seconds."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a base dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
