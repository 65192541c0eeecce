"""Several named PEFT adapters on one base model, switched per call without reloading the base.

LoRA and DoRA adapters are applied by switching the active adapter (``set_adapter``), never by mixing
adapters inside one batch: PEFT's mixed-adapter batches exclude DoRA, and vLLM cannot serve DoRA at all,
so DoRA adapters are either switched here or merged into the weights (`merge_adapter`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dorag.core.errors import ModelError
from dorag.core.io import write_json
from dorag.core.require import require

META = "dorag_adapter.json"  # base-model fingerprint written beside adapter_config.json
BASE = "base"  # the name that selects the bare base model


def base_fingerprint(model: Any) -> dict[str, Any]:
    cfg = model.config
    return {k: getattr(cfg, k, None) for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size",
                                               "num_attention_heads", "intermediate_size")}


def write_adapter_meta(adapter_dir: str | Path, model: Any, base_name: str, method: str, **extra: Any) -> None:
    write_json(Path(adapter_dir) / META, {"base_model": base_name, "method": method,
                                          "fingerprint": base_fingerprint(model), **extra})


def resolve_adapter(path_or_id: str | Path) -> Path:
    """A local adapter directory, or a Hub repo id downloaded (once, to the HF cache) as one."""
    from dorag.models.registry import HUB_ID

    path = Path(path_or_id).expanduser()
    if path.exists() or not HUB_ID.match(str(path_or_id)):
        return path
    from dorag.models.loading import hub_reachable

    if not hub_reachable():
        raise ModelError(f"adapter {path_or_id!r} is not a local directory and the Hugging Face Hub is unreachable "
                         "(offline?); give a local adapter directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_id)))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: all one line for the user
        raise ModelError(f"could not get adapter {path_or_id!r} from the Hugging Face Hub "
                         f"({type(exc).__name__}; offline?); give a local adapter directory") from exc


def check_adapter_dir(path: str | Path, model: Any | None = None) -> dict[str, Any]:
    """Validate a PEFT adapter directory (and, given a model, that it was trained on that base)."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{path} is not a PEFT adapter directory (no adapter_config.json)")
    if not any((path / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise ModelError(f"{path} has no adapter weights (adapter_model.safetensors)")
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except ValueError as exc:
        raise ModelError(f"{path}/adapter_config.json is not valid JSON ({exc})") from exc
    weights = path / "adapter_model.safetensors"
    if weights.is_file():
        _check_safetensors(weights)
    meta = json.loads((path / META).read_text()) if (path / META).is_file() else {}
    if model is not None and meta.get("fingerprint"):
        ours = base_fingerprint(model)
        theirs = meta["fingerprint"]
        diff = [f"{k} {theirs.get(k)} vs {ours.get(k)}" for k in ours if theirs.get(k) is not None and theirs.get(k) != ours.get(k)]
        if diff:
            raise ModelError(f"adapter {path} was trained on base {meta.get('base_model')!r}, which does not match "
                             f"this model ({'; '.join(diff)}); load it on its own base model")
    return {**config, "_dorag": meta}


def _check_safetensors(path: Path) -> None:
    """Read the file's header and tensor table (not the tensors), so a truncated or corrupt file is one clear error."""
    try:
        from safetensors import safe_open
    except ImportError:  # only with peft installed does an adapter load at all
        return
    try:
        with safe_open(str(path), framework="numpy") as f:
            if not list(f.keys()):
                raise ValueError("no tensors")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"{path}: corrupt or truncated adapter weights ({str(exc).splitlines()[0][:200]}); "
                         "copy it again or retrain the adapter") from exc


class AdapterSet:
    """One base model, many adapters: ``load(name, dir)``, then ``use(name)`` or ``use("base")``."""

    def __init__(self, model: Any) -> None:
        self.base = model
        self.model = model  # becomes a PeftModel once an adapter is loaded
        self.paths: dict[str, Path] = {}
        self.methods: dict[str, str] = {}
        self.active: str = BASE

    @property
    def names(self) -> list[str]:
        return [BASE, *self.paths]

    def load(self, name: str, path: str | Path) -> None:
        peft = require("peft", extra="train")
        if name == BASE or name in self.paths:
            raise ModelError(f"adapter name {name!r} is {'reserved' if name == BASE else 'already loaded'}")
        path = resolve_adapter(path)
        info = check_adapter_dir(path, self.base)
        try:
            if not self.paths:
                self.model = peft.PeftModel.from_pretrained(self.base, str(path), adapter_name=name)
            else:
                self.model.load_adapter(str(path), adapter_name=name)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ModelError(f"adapter {path} does not fit this base model: {str(exc).splitlines()[0][:300]}") from exc
        self.model.eval()
        self.paths[name] = Path(path)
        self.methods[name] = "dora" if info.get("use_dora") else "lora"
        self.use(self.active if self.active in self.paths else BASE)

    def use(self, name: str) -> None:
        """Activate an adapter (or the base) for the following forward passes."""
        if name not in self.names:
            raise ModelError(f"unknown adapter {name!r}; loaded: {', '.join(self.names)}")
        if name != BASE:
            self.model.set_adapter(name)
        self.active = name

    @contextlib.contextmanager
    def using(self, name: str) -> Iterator[Any]:
        """`with adapters.using("code"): model(...)`; the base runs with adapters disabled."""
        previous = self.active
        self.use(name)
        try:
            if name == BASE and self.paths:
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model
        finally:
            self.use(previous)


def fold_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """The base model with an adapter (LoRA or DoRA) folded into its weights, in memory."""
    peft = require("peft", extra="train")
    path = resolve_adapter(adapter_dir)
    check_adapter_dir(path, model)
    try:
        merged = peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(f"adapter {path} does not fit this base model: {str(exc).splitlines()[0][:300]}") from exc
    return merged.eval()


def merge_adapter(model: Any, adapter_dir: str | Path, out_dir: str | Path, tokenizer: Any | None = None) -> Path:
    """Fold an adapter (LoRA or DoRA) into the base weights and save a plain checkpoint."""
    merged = fold_adapter(model, adapter_dir)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def export_adapter(adapter_dir: str | Path, out_dir: str | Path, base_model_id: str | None = None) -> Path:
    """Copy a PEFT adapter dir for sharing; point base_model_name_or_path at a hub id when given."""
    src = Path(adapter_dir)
    config = check_adapter_dir(src)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if base_model_id:
        config = {k: v for k, v in config.items() if k != "_dorag"}
        config["base_model_name_or_path"] = base_model_id
        write_json(tmp / "adapter_config.json", config)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
