"""`dorag publish`'s files for the Hub: the model card's front matter (read back with huggingface_hub's own
parser) and the exported adapter_config.json name the base model by its Hub id, never a local cache path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dorag.core.io import write_json
from dorag.experiments.publish import hub_base_id, publish

CACHE_PATH = "/root/.cache/dorag/models/qwen2.5-coder-0.5b-instruct"
HUB_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"


def _adapter(dir: Path, base_name: str, base_path: str) -> None:
    import torch
    from safetensors.torch import save_file

    dir.mkdir(parents=True)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(2, 4)}, str(dir / "adapter_model.safetensors"))
    write_json(dir / "adapter_config.json", {"peft_type": "LORA", "use_dora": True, "r": 2,
                                             "base_model_name_or_path": base_path})
    write_json(dir / "dorag_adapter.json", {"base_model": base_name, "method": "dora"})


@pytest.fixture()
def ablation(tmp_path: Path) -> Path:
    abl = tmp_path / "abl"
    _adapter(abl / "adapters" / "dora" / "adapter", "qwen2.5-coder-0.5b-instruct", CACHE_PATH)
    write_json(abl / "ablation.json", {
        "adapters": {"dora": {"dir": str(abl / "adapters" / "dora"), "method": "dora", "steps": 150}},
        "cells": [{"condition": c, "benchmark": b, "adapter": a} for b in ("humaneval", "unseen-api")
                  for c, a in (("baseline", None), ("dora_only", "dora"), ("dora_rag", "dora"),
                               ("dora_legacy_rag", "dora_legacy"))]})
    write_json(abl / "metrics.json", {
        "humaneval": {"baseline": {"pass@1": 0.55}, "dora_only": {"pass@1": 0.561}, "dora_rag": {"pass@1": 0.57},
                      "dora_legacy_rag": {"pass@1": 0.4}},
        "unseen-api": {"baseline": {"pass@1": 0.03}, "dora_only": {"pass@1": 0.05}, "dora_rag": {"pass@1": 0.2},
                       "dora_legacy_rag": {"pass@1": 0.1}}})
    return abl


def test_card_front_matter_parses_with_the_hub_id_and_the_measured_scores(tmp_path, ablation):
    from huggingface_hub import ModelCard

    [rec] = publish(ablation, tmp_path / "pub")
    assert rec["pushed"] is None and "no HF token" in rec["why_not"]
    out = Path(rec["path"])
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == HUB_ID and card.data.library_name == "peft"
    assert {"peft", "dora", "code"} <= set(card.data.tags)
    scores = {(r.dataset_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    # only the conditions that used this adapter; dora_legacy_rag is another adapter's, though its name starts alike
    assert scores == {("openai_humaneval", "pass@1 (dora_only)"): 0.561, ("openai_humaneval", "pass@1 (dora_rag)"): 0.57,
                      ("dorag/unseen-api", "pass@1 (dora_only)"): 0.05, ("dorag/unseen-api", "pass@1 (dora_rag)"): 0.2}
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == HUB_ID and "_dorag" not in config
    # the source adapter is left as it was
    src = json.loads((ablation / "adapters" / "dora" / "adapter" / "adapter_config.json").read_text())
    assert src["base_model_name_or_path"] == CACHE_PATH


@pytest.mark.parametrize("names, expected", [
    (("qwen2.5-coder-0.5b-instruct", None), HUB_ID),
    ((None, CACHE_PATH), HUB_ID),
    (("someone/their-model", None), "someone/their-model"),
    (("/data/my-model", "/data/my-model"), None),  # a local directory only: no Hub id is invented
    ((None, None), None),
])
def test_hub_base_id(names, expected):
    assert hub_base_id(*names) == expected
