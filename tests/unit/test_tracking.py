"""Tracking backends: the default writes nothing extra; mlflow and wandb (offline) record params and metrics."""

from __future__ import annotations

import pytest

from dorag.core.errors import MissingDependencyError
from dorag.tracking import FilesTracker, TrackingConfig, flatten, open_tracker


def test_flatten_and_default_backend(tmp_path):
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": "[1, 2]", "d": "{}"}
    tracker = open_tracker(TrackingConfig(), "run", tmp_path)
    assert isinstance(tracker, FilesTracker)
    tracker.log_metrics({"x": 1.0})
    tracker.finish()
    assert list(tmp_path.iterdir()) == []  # the run directory is the record; nothing else is written


def test_mlflow_store_is_read_back_by_the_client(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    tracker = open_tracker(TrackingConfig(backend="mlflow", experiment="unit"), "r1", tmp_path)
    tracker.log_params({"model.name": "tiny", "rag.top_k": 4})
    tracker.log_metrics({"humaneval/dora_rag/pass@1": 0.25, "not-a-number": "x"}, step=2)
    tracker.set_tags({"git_sha": "abc123"})
    (tmp_path / "report.md").write_text("# report\n")
    tracker.log_artifact(tmp_path / "report.md")
    tracker.finish()
    client = mlflow.tracking.MlflowClient(tracking_uri=tracker.uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["git_sha"] == "abc123"
    assert run.data.metrics == {"humaneval/dora_rag/pass_1": 0.25}  # '@' is not allowed in MLflow keys
    assert run.data.params == {"model.name": "tiny", "rag.top_k": "4"}
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["report.md"]
    # a second run lands in the same experiment of the same store
    again = open_tracker(TrackingConfig(backend="mlflow", experiment="unit"), "r2", tmp_path)
    again.finish("failed")
    exp = client.get_experiment_by_name("unit")
    statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]


def test_wandb_offline_writes_a_local_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = open_tracker(TrackingConfig(backend="wandb", experiment="dorag-test"), "r1", tmp_path)
    tracker.log_params({"rag.top_k": 4})
    tracker.log_metrics({"pass@1": 0.5})
    tracker.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_missing_client_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # what a missing package looks like to the importer
    with pytest.raises(MissingDependencyError, match=r"dorag\[tracking\]"):
        open_tracker(TrackingConfig(backend="mlflow"), "r", tmp_path)
