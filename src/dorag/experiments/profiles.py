"""Built-in ablation profiles (`dorag ablate --profile NAME`, `dorag quickstart [--full]`), shipped as YAML
inside the package so that they work from a plain pip install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dorag.core.config import load_yaml
from dorag.core.errors import ConfigError

PROFILE_DIR = Path(__file__).parent / "ablation_profiles"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(name: str) -> Path:
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(profile_names())}")
    return path


def load_profile(name: str) -> dict[str, Any]:
    return load_yaml(profile_path(name))
