"""Typed configs: dataclasses with help text, YAML files and dotted command-line overrides.

Precedence is defaults, then YAML, then overrides (``peft.r=32 training.num_train_epochs=5``).
Every problem (unknown key, wrong type, invalid choice) is collected and raised at once as one
``ConfigError`` that names each key and its valid choices.

A config dataclass may define ``check(self) -> list[str]`` for cross-field rules; its messages are
reported under the dataclass's own key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from dorag.core.errors import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def option(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING) -> Any:
    """A dataclass field with help text, the single source of CLI and docs help."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help})


def at_least_one(obj: Any, names: Sequence[str]) -> list[str]:
    """One problem line for each named field of `obj` below 1 (counts, sizes, step intervals)."""
    return [f"{name}: must be at least 1, got {getattr(obj, name)}" for name in names if getattr(obj, name) < 1]


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(f"override {item!r} must look like key.subkey=value")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                problems.append(f"override {item!r} conflicts with an earlier value for {part!r}")
                break
            node = nxt
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base`; mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def yaml_error(path: str | Path, exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the file, the line and column of the problem, and what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "") + "; fix the file and re-run"


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(
    cls: type[T],
    yaml_path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Build `cls` from defaults, then `base` (e.g. CLI flags), then a YAML file, then overrides."""
    data: dict[str, Any] = dict(base or {})
    if yaml_path is not None:
        data = deep_merge(data, load_yaml(yaml_path))
    data = deep_merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build and validate dataclass `cls` from plain data; raise one ConfigError listing every problem."""
    problems: list[str] = []
    obj = _build(cls, data, "", problems)
    if len(problems) == 1:
        raise ConfigError(f"invalid config: {problems[0]}")
    if problems:
        raise ConfigError(f"invalid config ({len(problems)} problems):\n  " + "\n  ".join(problems))
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-ready data for a config dataclass (Paths become strings, tuples lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every leaf field of a config dataclass, for docs and --help."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else None
        )
        rows.append((key, _type_name(tp), to_dict(default), f.metadata.get("help", "")))
    return rows


# --------------------------------------------------------------------------- internals


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(f"{where}: expected a mapping of keys, got {type(data).__name__} {data!r}")
        data = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            valid = sorted(fields)
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            problems.append(f"unknown key {prefix}{key}{hint}; valid keys under {where}: {', '.join(valid)}")
    kwargs = {}
    bad: set[str] = set()
    for name in fields:
        if name in data:
            before = len(problems)
            kwargs[name] = _coerce(hints[name], data[name], f"{prefix}{name}", problems)
            if len(problems) > before:
                bad.add(name)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError, ConfigError) as exc:
        problems.append(f"{where}: {exc}")
        obj = cls()
    check = getattr(obj, "check", None)
    if callable(check):
        # A field that already failed to parse holds a placeholder (0, ""): a cross-field rule about it would
        # report a second, wrong problem, so its messages are left out.
        for msg in check():
            if msg.split(":", 1)[0].strip() not in bad:
                problems.append(f"{prefix}{msg}")
    return obj


_NO = object()


def _coerce(tp: Any, value: Any, key: str, problems: list[str]) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[str] = []
        for arg in args:
            if arg is type(None):
                continue
            trial: list[str] = []
            out = _coerce(arg, value, key, trial)
            if not trial:
                return out
            errors.extend(trial)
        problems.append(errors[0] if len(errors) == 1 else f"{key}: expected {_type_name(tp)}, got {value!r}")
        return None
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            problems.append(f"{key}: invalid value {value!r}; choose one of: {', '.join(map(str, choices))}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", problems)
    if origin in (tuple, list, Sequence):
        args = get_args(tp)
        item_tp = args[0] if args else Any
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if "," in value else [value]
            value = [yaml.safe_load(v) for v in value] if item_tp is not str else value
        elif not isinstance(value, (list, tuple)):
            value = [value]
        items = [_coerce(item_tp, v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a mapping, got {value!r}")
            return {}
        val_tp = get_args(tp)[1] if get_args(tp) else Any
        return {str(k): _coerce(val_tp, v, f"{key}.{k}", problems) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, got {value!r}")
        return False
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{key}: expected an integer, got {value!r}")
        return 0
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _float_literal(value)
        if number is not None:  # YAML 1.1 reads `2e-4` (no dot) as a string; a user means the number
            return number
        problems.append(f"{key}: expected a number, got {value!r}")
        return 0.0
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # YAML reads `model: 7` as an int; a name is still meant
        problems.append(f"{key}: expected a string, got {value!r}")
        return ""
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        problems.append(f"{key}: expected a path, got {value!r}")
        return Path()
    return value


_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _float_literal(value: Any) -> float | None:
    """A finite number written as a user writes it (``2e-4``, ``1E5``, ``.5``), or None."""
    if not isinstance(value, str) or not _FLOAT.fullmatch(value.strip().replace("_", "")):
        return None
    return float(value.strip().replace("_", ""))


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is Literal:
        return "{" + ",".join(map(str, get_args(tp))) + "}"
    if origin in (tuple, list):
        return f"list[{_type_name(get_args(tp)[0])}]" if get_args(tp) else "list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))
