"""Run tracking backends behind one small interface.

Every run already writes its run directory (``core.runs``); a tracker mirrors params, metrics and
artifacts to an experiment tracker as well. ``files`` (the default) adds nothing beyond the run directory,
``mlflow`` writes a local MLflow store (an SQLite file and an artifact directory, MLflow 3's local default)
that ``mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db`` opens without a server, and ``wandb`` runs in offline mode unless told otherwise (``wandb sync`` uploads later).
The clients are imported lazily, only by the backend that needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from dorag.core.config import option
from dorag.core.errors import ConfigError
from dorag.core.require import require


@dataclass
class TrackingConfig:
    """Where runs are mirrored besides their run directory."""

    backend: Literal["files", "mlflow", "wandb"] = option("files", "files (run directory only), mlflow or wandb")
    uri: str | None = option(None, "mlflow: tracking URI (default sqlite:///<out>/mlflow.db); wandb: directory")
    experiment: str = option("dorag", "mlflow experiment / wandb project")
    mode: Literal["offline", "online"] = option("offline", "wandb mode; offline needs no account or network")


class Tracker(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: str | Path) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def finish(self, status: str = "ok") -> None: ...


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become strings (trackers take scalar params)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple, Mapping)):
            out[name] = str(list(value) if not isinstance(value, Mapping) else dict(value))
        else:
            out[name] = value
    return out


class FilesTracker:
    """The default: everything is already in the run directory, so nothing more is written."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def finish(self, status: str = "ok") -> None:
        pass


# MLflow keys allow alphanumerics, _ - . / and spaces; @ in pass@1 is not one of them.
def _mlflow_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)[:250]


class MlflowTracker:
    """A run in a local MLflow store (SQLite plus an artifact directory by default; any tracking URI works)."""

    def __init__(self, cfg: TrackingConfig, run_name: str, default_dir: Path) -> None:
        mlflow = require("mlflow", extra="tracking", package="mlflow-skinny")
        default_dir.mkdir(parents=True, exist_ok=True)
        self.uri = cfg.uri or f"sqlite:///{(default_dir / 'mlflow.db').resolve()}"
        self.client = mlflow.tracking.MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(cfg.experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(
            cfg.experiment, artifact_location=(default_dir / "mlartifacts").resolve().as_uri())
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(self.run_id, _mlflow_key(key), str(value)[:6000])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.client.log_metric(self.run_id, _mlflow_key(key), float(value), step=step or 0)

    def log_artifact(self, path: str | Path) -> None:
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path=p.name)
        elif p.is_file():
            self.client.log_artifact(self.run_id, str(p))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def finish(self, status: str = "ok") -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if status == "ok" else "FAILED")


class WandbTracker:
    """A wandb run, offline by default (files under <dir>/wandb; `wandb sync` uploads them later)."""

    def __init__(self, cfg: TrackingConfig, run_name: str, default_dir: Path) -> None:
        wandb = require("wandb", extra="tracking")
        directory = Path(cfg.uri or default_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=cfg.experiment, name=run_name, dir=str(directory), mode=cfg.mode,
                              reinit="finish_previous")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.run.config.update(dict(params), allow_val_change=True)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def log_artifact(self, path: str | Path) -> None:
        p = Path(path)
        if p.is_file():
            self.run.save(str(p), base_path=str(p.parent), policy="now")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.run.tags = tuple({*(self.run.tags or ()), *(f"{k}={v}" for k, v in tags.items())})

    def finish(self, status: str = "ok") -> None:
        self.run.finish(exit_code=0 if status == "ok" else 1)


def open_tracker(cfg: TrackingConfig, run_name: str, default_dir: str | Path) -> Tracker:
    """The tracker `cfg` asks for; `default_dir` is where a local store goes when no uri is given."""
    if cfg.backend == "files":
        return FilesTracker()
    if cfg.backend == "mlflow":
        return MlflowTracker(cfg, run_name, Path(default_dir))
    if cfg.backend == "wandb":
        return WandbTracker(cfg, run_name, Path(default_dir))
    raise ConfigError(f"tracking.backend: unknown backend {cfg.backend!r}; choose files, mlflow or wandb")
