"""Adapter training and use on a tiny random model: loss drops, save/reload parity, switching, merge, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dorag.core.config import from_dict
from dorag.core.errors import ConfigError, DataError, ModelError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

EXAMPLES = [
    {"id": str(i), "task": "code", "messages": [
        {"role": "user", "content": f"def add{i}(a, b):"},
        {"role": "assistant", "content": f"```python\ndef add{i}(a, b):\n    return a + b\n```"}]}
    for i in range(8)
]


def _cfg(tmp_path: Path, model_dir: Path, **over):
    from dorag.training.config import TrainConfig

    data = {"name": "code", "output_dir": str(tmp_path / "run"), "model": {"name": str(model_dir)},
            "data": {"train": "unused.jsonl"},
            "peft": {"method": "lora", "targets": "attention", "r": 4, "alpha": 8, "dropout": 0.0},
            "training": {"max_steps": 6, "batch_size": 4, "learning_rate": 5e-3, "logging_steps": 2,
                         "eval_steps": 3, "save_steps": 3, "max_seq_len": 64, "warmup_ratio": 0.0}}
    for key, value in over.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(TrainConfig, data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    from dorag.training.sft import train_adapter

    tmp = tmp_path_factory.mktemp("train")
    res = train_adapter(_cfg(tmp, tiny_model_dir), EXAMPLES, EXAMPLES[:4])
    return res, tmp


def test_training_lowers_eval_loss_and_logs_the_run(trained):
    res, tmp = trained
    assert res.steps == 6 and res.eval_loss_after < res.eval_loss_before
    assert 0 < res.trainable_params < res.total_params and res.tokens_per_s > 0
    run = tmp / "run"
    assert (run / "config.yaml").is_file() and json.loads((run / "meta.json").read_text())["status"] == "ok"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in m for m in metrics) and any("eval_loss" in m for m in metrics)
    assert (res.adapter_dir / "adapter_config.json").is_file()
    assert (res.adapter_dir / "adapter_model.safetensors").is_file()
    assert json.loads((res.adapter_dir / "dorag_adapter.json").read_text())["method"] == "lora"


def _logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_saved_and_reloaded_adapter_gives_identical_logits(trained, tiny_model_dir):
    from dorag.models.adapters import AdapterSet
    from dorag.models.loading import ModelConfig, load_transformers

    res, _ = trained
    base, tok = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    ids = tok("def add3(a, b):", return_tensors="pt")["input_ids"]
    plain = _logits(base, ids)
    aset = AdapterSet(base)
    aset.load("code", res.adapter_dir)
    with aset.using("code") as m:
        adapted = _logits(m, ids)
    with aset.using("base") as m:
        assert torch.equal(_logits(m, ids), plain)
    assert not torch.allclose(adapted, plain)
    base2, _ = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    again = AdapterSet(base2)
    again.load("code", res.adapter_dir)
    with again.using("code") as m:
        assert torch.equal(_logits(m, ids), adapted)


def test_switching_two_adapters_matches_loading_each_alone(tmp_path, trained, tiny_model_dir):
    from dorag.models.adapters import AdapterSet
    from dorag.models.loading import ModelConfig, load_transformers
    from dorag.training.sft import train_adapter

    res, _ = trained
    dora = train_adapter(_cfg(tmp_path, tiny_model_dir, **{"name": "docstring", "peft.method": "dora",
                                                           "peft.targets": "mlp", "training.max_steps": 3}),
                         EXAMPLES, [])
    base, tok = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    ids = tok("def add5(a, b):", return_tensors="pt")["input_ids"]
    both = AdapterSet(base)
    both.load("code", res.adapter_dir)
    both.load("docstring", dora.adapter_dir)
    assert both.methods == {"code": "lora", "docstring": "dora"}
    # a switch reloads nothing: every parameter is the same tensor before and after (bench/adapter_switch.py times it)
    storage = {n: p.data_ptr() for n, p in both.model.named_parameters()}
    both.use("docstring")
    both.use("code")
    assert {n: p.data_ptr() for n, p in both.model.named_parameters()} == storage
    with both.using("code") as m:
        code_out = _logits(m, ids)
    with both.using("docstring") as m:
        doc_out = _logits(m, ids)
    for name, path, expected in (("code", res.adapter_dir, code_out), ("docstring", dora.adapter_dir, doc_out)):
        alone_base, _ = load_transformers(ModelConfig(name=str(tiny_model_dir)))
        alone = AdapterSet(alone_base)
        alone.load(name, path)
        with alone.using(name) as m:
            torch.testing.assert_close(_logits(m, ids), expected, rtol=0, atol=1e-6)


def test_merge_gives_the_adapter_logits(tmp_path, trained, tiny_model_dir):
    from dorag.models.adapters import AdapterSet, merge_adapter
    from dorag.models.loading import ModelConfig, load_transformers

    res, _ = trained
    base, tok = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    ids = tok("def add1(a, b):", return_tensors="pt")["input_ids"]
    aset = AdapterSet(base)
    aset.load("code", res.adapter_dir)
    with aset.using("code") as m:
        expected = _logits(m, ids)
    fresh, tok2 = load_transformers(ModelConfig(name=str(tiny_model_dir)))
    out = merge_adapter(fresh, res.adapter_dir, tmp_path / "merged", tok2)
    merged, _ = load_transformers(ModelConfig(name=str(out)))
    torch.testing.assert_close(_logits(merged, ids), expected, rtol=1e-4, atol=1e-4)


def test_resume_continues_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    from dorag.training.sft import train_adapter

    full = train_adapter(_cfg(tmp_path / "a", tiny_model_dir), EXAMPLES, EXAMPLES[:2])
    part_cfg = _cfg(tmp_path / "b", tiny_model_dir)
    train_adapter(part_cfg, EXAMPLES, EXAMPLES[:2])
    run = tmp_path / "b" / "run"
    shutil.rmtree(run / "checkpoints" / "checkpoint-6")  # as if killed after the step-3 checkpoint
    shutil.rmtree(run / "adapter")
    with pytest.raises(ConfigError, match="--resume"):
        train_adapter(part_cfg, EXAMPLES, EXAMPLES[:2])
    resumed = train_adapter(_cfg(tmp_path / "b", tiny_model_dir, resume=True), EXAMPLES, EXAMPLES[:2])
    assert resumed.steps == 6
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-3"
    a = load_file(full.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_clear_errors(tmp_path, tiny_model_dir, trained):
    from dorag.data.sft_data import load_examples
    from dorag.models.adapters import AdapterSet
    from dorag.training.sft import train_adapter

    with pytest.raises(ConfigError, match=r"unknown module\(s\) qq_proj; this model's linear modules are: .*q_proj"):
        train_adapter(_cfg(tmp_path, tiny_model_dir, **{"peft.targets": "qq_proj"}), EXAMPLES, [])
    with pytest.raises(ConfigError, match="r: must be at least 1, got 0"):
        _cfg(tmp_path, tiny_model_dir, **{"peft.r": 0})
    with pytest.raises(DataError, match="empty dataset"):
        train_adapter(_cfg(tmp_path, tiny_model_dir), [], [])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty dataset"):
        load_examples(empty)
    fields = tmp_path / "fields.jsonl"
    fields.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(DataError, match=r"fields.jsonl:1: unknown record format \(fields: answer, question\)"):
        load_examples(fields)
    # An adapter trained on another base: a model with a different hidden size.
    from transformers import Qwen2Config, Qwen2ForCausalLM

    other = Qwen2ForCausalLM(Qwen2Config(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(ModelError, match="does not match this model"):
        AdapterSet(other).load("code", trained[0].adapter_dir)


def test_qlora_trains_a_4bit_base(tmp_path, tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    from dorag.training.sft import train_adapter

    res = train_adapter(_cfg(tmp_path, tiny_model_dir, **{"peft.method": "qlora", "training.max_steps": 3}),
                        EXAMPLES, EXAMPLES[:4])
    assert res.steps == 3 and res.eval_loss_after is not None
    assert json.loads((res.adapter_dir / "dorag_adapter.json").read_text())["method"] == "qlora"


def test_packing_and_gradient_checkpointing_train(tmp_path, tiny_model_dir):
    from dorag.training.sft import train_adapter

    res = train_adapter(_cfg(tmp_path, tiny_model_dir, **{"training.packing": True, "training.gradient_checkpointing": True,
                                                           "training.max_steps": 4}), EXAMPLES, EXAMPLES[:4])
    assert res.steps == 4 and res.eval_loss_after < res.eval_loss_before


def test_target_only_logits_give_the_plain_trainers_loss_and_gradients(tmp_path, tiny_model_dir):
    """The output layer runs only from the batch's first target token on; loss and gradients are unchanged."""
    import peft
    import transformers

    from dorag.training.encoding import PadCollator, encode_example
    from dorag.training.sft import target_logits_trainer

    tok = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                       init_lora_weights=False))
    long_prompt = [{"role": "user", "content": "def add(a, b):\n" * 12}, {"role": "assistant", "content": "return a + b"}]
    batch = PadCollator(tok.pad_token_id)([encode_example(tok, m, 512) for m in (EXAMPLES[0]["messages"], long_prompt)])
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    results = []
    for cls in (transformers.Trainer, target_logits_trainer()):
        trainer = cls(model=model, args=args)
        model.zero_grad()
        n_items = int((batch["labels"][:, 1:] != -100).sum())
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((float(loss), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))
    first = int((batch["labels"] != -100).float().argmax(dim=1).min())
    assert first > 20  # the prompt is most of each row: the kept logits are a small part of them
