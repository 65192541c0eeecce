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


def resolve_ablate_data(data: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """A YAML's ``profile: NAME`` (or the given profile) is its starting point; the YAML's own keys win."""
    from dorag.core.config import deep_merge

    data = dict(data)
    name = data.pop("profile", None) or profile
    if name is None:
        return data
    base = load_profile(name)
    # `conditions` replace the profile's wholesale unless `extra_conditions` adds to them instead
    extra = data.pop("extra_conditions", None)
    merged = deep_merge(base, data)
    if extra:
        merged["conditions"] = {**(merged.get("conditions") or _six()), **extra}
    return merged


def _six() -> dict[str, Any]:
    from dorag.core.config import to_dict
    from dorag.experiments.ablate import _default_conditions

    return to_dict(_default_conditions())
