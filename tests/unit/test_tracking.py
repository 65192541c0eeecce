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


def wandb_records(path):
    """The protobuf records of a W&B offline run file (`run-*.wandb`): a LevelDB-style log of 32 KiB blocks,
    each record a 7-byte header (crc32, length, kind: 1 full, 2 first, 3 middle, 4 last) and its bytes."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, buf, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def test_wandb_offline_run_is_read_back_with_its_params_and_metrics(tmp_path, monkeypatch):
    import json

    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = open_tracker(TrackingConfig(backend="wandb", experiment="dorag-test"), "r1", tmp_path)
    tracker.log_params({"rag.top_k": 4, "model.name": "tiny"})
    tracker.log_metrics({"humaneval/dora_rag/pass@1": 0.25}, step=1)
    tracker.log_metrics({"humaneval/dora_rag/pass@1": 0.5}, step=2)
    tracker.finish()
    # wandb-core buffers the run file in 32 KiB blocks and may still hold them when finish() returns (on a
    # loaded CI machine the file once held only its 7-byte header); shutting the service down flushes it,
    # as the end of a dorag process does
    wandb.teardown()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    config, history, project = {}, [], None
    kinds = []
    for r in wandb_records(next(runs[0].glob("run-*.wandb"))):
        kind = r.WhichOneof("record_type")
        kinds.append(kind)
        if kind == "run":
            project, name = r.run.project, r.run.display_name
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    assert kinds[-1:] == ["exit"], f"the run file ends before its exit record: {kinds}"
    assert project == "dorag-test" and name == "r1"
    assert config == {"rag.top_k": 4, "model.name": "tiny"}
    assert [(h["_step"], h["humaneval/dora_rag/pass@1"]) for h in history] == [(1, 0.25), (2, 0.5)]


def test_missing_client_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # what a missing package looks like to the importer
    with pytest.raises(MissingDependencyError, match=r"dorag\[tracking\]"):
        open_tracker(TrackingConfig(backend="mlflow"), "r", tmp_path)
