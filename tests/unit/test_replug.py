"""REPLUG LSR: the loss against a hand-computed KL, query-side gradients, the datastore refresh cadence, the
teacher scorers (local parity, HTTP probe), data checks, and a few steps end to end on tiny random models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dorag.core.config import from_dict
from dorag.core.errors import ConfigError, DataError
from dorag.core.io import read_json, read_jsonl, write_jsonl
from dorag.data.qrels import write_beir
from dorag.training.retriever_config import ReplugConfig, RetrieverTrainConfig

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

WORDS = ["sort", "merge", "parse", "encode", "decode", "hash", "split", "join", "read", "write", "send", "fetch",
         "cache", "retry", "sleep", "zip"]


def pairs() -> list[dict]:
    """Hybrid pairs (summary + signature -> body), each cut from its own function m:<w>_items."""
    return [{"query": f"Apply {w} to every item and keep the first results.\ndef {w}_items(items, limit):",
             "positive": f"out = [{w}(x) for x in items]\nreturn out[:limit]\n", "category": "hybrid",
             "relation": "docstring+signature->body", "query_doc_id": f"m:{w}_items", "doc_id": f"m:{w}_items",
             "positive_id": f"m:{w}_items#body"} for w in WORDS]


def datastore() -> list[dict]:
    """Each query's own function (to be removed) and a helper that defines the word it calls."""
    own = [{"id": f"m:{w}_items", "text": f"def {w}_items(items, limit):\n    out = [{w}(x) for x in items]\n"
                                          "    return out[:limit]\n", "meta": {}} for w in WORDS]
    helpers = [{"id": f"lib:{w}", "text": f"def {w}(x):\n    \"\"\"The {w} of one value.\"\"\"\n    return x.{w}()\n",
                "meta": {}} for w in WORDS]
    return own + helpers


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    out = tmp_path / "synth"
    ps = pairs()
    write_jsonl(out / "train.jsonl", ps)
    write_jsonl(out / "datastore.jsonl", datastore())
    corpus = [{"id": p["positive_id"], "text": p["positive"], "meta": {}} for p in ps]
    queries = [{"_id": f"q{i}", "text": p["query"]} for i, p in enumerate(ps)]
    write_beir(out, corpus, queries, {f"q{i}": {p["positive_id"]: 1} for i, p in enumerate(ps)})
    return out


def config(tmp_path: Path, embedder: Path, teacher: Path, data: Path, resume: bool = True, replug: dict | None = None,
           **training) -> RetrieverTrainConfig:
    return from_dict(RetrieverTrainConfig, {
        "method": "replug-lsr", "embedder": str(embedder), "output_dir": str(tmp_path / "run"), "resume": resume,
        "data": {"train": str(data)},
        "training": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1,
                     "eval_steps": 100, "save_steps": 2, "max_seq_length": 32, "lr_scheduler": "constant", **training},
        "replug": {"datastore": [str(data / "datastore.jsonl")], "teacher_model": str(teacher), "top_n": 3,
                   "refresh_steps": 2, "doc_budget_tokens": 64, "max_target_tokens": 24, "lm_batch_size": 4,
                   **(replug or {})}})


# ---------------------------------------------------------------- the objective

def test_lsr_loss_matches_a_hand_computed_kl():
    from dorag.training.replug import lsr_loss

    scores = [[0.9, 0.5, 0.1], [0.2, 0.3, 0.8]]  # cos(E(d), E(x)) for 2 queries x 3 documents
    lm = [[-10.0, -12.0, -15.0], [-20.0, -18.0, -19.0]]  # log P_LM(y | d, x)
    gamma, beta = 0.5, 2.0

    def softmax(xs):
        z = sum(math.exp(v) for v in xs)
        return [math.exp(v) / z for v in xs]

    expected = 0.0
    for s, l in zip(scores, lm):
        p = softmax([v / gamma for v in s])  # Eq. 3
        q = softmax([v / beta for v in l])  # Eq. 4
        expected += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))  # KL(P_R || Q), Eq. 5
    expected /= 2
    got = lsr_loss(torch.tensor(scores), torch.tensor(lm), gamma, beta)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.1228, abs=1e-4)  # 0.0345 and 0.2111, worked by hand once
    # the direction matters: KL(Q || P_R) is a different number
    reverse = sum(sum(qi * (math.log(qi) - math.log(pi)) for pi, qi in zip(softmax([v / gamma for v in s]),
                                                                          softmax([v / beta for v in l])))
                  for s, l in zip(scores, lm)) / 2
    assert abs(reverse - expected) > 1e-3
    # when the retriever already agrees with the LM the loss is zero
    agree = torch.tensor(lm) / beta * gamma
    assert lsr_loss(agree, torch.tensor(lm), gamma, beta).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_the_query_side_only():
    from dorag.training.replug import lsr_loss, retrieval_scores

    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1).requires_grad_(True)  # (B, H)
    d = torch.nn.functional.normalize(torch.randn(2, 3, 8), dim=-1).requires_grad_(True)  # (B, n, H)
    lm = torch.tensor([[-3.0, -1.0, -2.0], [-5.0, -6.0, -4.0]], requires_grad=True)
    lsr_loss(retrieval_scores(q, d), lm, 0.1, 1.0).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert d.grad is None and lm.grad is None  # documents and the teacher are constants


# ---------------------------------------------------------------- the datastore refresh

def test_documents_are_stale_between_refreshes_and_re_embedded_at_each(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir):
    from sentence_transformers import SentenceTransformer

    from dorag.training.replug import LSRTrainer
    from dorag.training.replug_data import to_example

    cfg = config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir, replug={"refresh_steps": 3})
    model = SentenceTransformer(str(tiny_embedder_dir), device="cpu")
    docs = datastore()[len(WORDS):]
    teacher = lambda rows: [-float(len(prompt) % 7) - len(target) / 10 for prompt, target in rows]  # noqa: E731
    trainer = LSRTrainer(cfg, model, docs, teacher, lambda ex, d: d["text"] + ex.problem, total_steps=10)
    batch = [to_example(p) for p in pairs()[:4]]

    def params():
        return torch.cat([p.detach().flatten().clone() for p in model.parameters()])

    trainer.train_step(batch)  # step 0 embeds the datastore first
    first, start = trainer.doc_emb.clone(), params()
    trainer.train_step(batch)
    trainer.train_step(batch)
    assert trainer.step == 3 and trainer.refreshes == [0]
    assert not torch.equal(params(), start)  # the encoder moved...
    assert torch.equal(trainer.doc_emb, first)  # ...but the documents did not: no refresh between
    expected = model.encode([d["text"] for d in docs], convert_to_tensor=True, normalize_embeddings=True)
    trainer.train_step(batch)  # step 3 % refresh_steps == 0: re-embed with the encoder as it is now
    assert trainer.refreshes == [0, 3]
    assert not torch.allclose(trainer.doc_emb, first, atol=1e-4)
    assert torch.allclose(trainer.doc_emb, expected, atol=1e-5)


# ---------------------------------------------------------------- the teachers

def test_local_scorer_matches_a_plain_forward_pass(tiny_model_dir):
    from dorag.models.loading import ModelConfig, load_transformers
    from dorag.models.scoring import TransformersScorer

    model, tok = load_transformers(ModelConfig(name=str(tiny_model_dir), device="cpu"))
    rows = [("def add(a, b):\n", "    return a + b\n"), ("# context\nprint(math.sqrt(2))\ndef f(x):\n", "    pass\n"),
            ("x", "def has_close_elements(numbers, threshold):\n")]
    got = TransformersScorer(model, tok, batch_size=2)(rows)  # two rows share a left-padded batch
    for (prompt, target), value in zip(rows, got):
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        t = tok(target, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + t])).logits[0].float(), -1)  # (L, V)
        want = sum(logp[len(p) - 1 + i, tok_id].item() for i, tok_id in enumerate(t))
        assert value == pytest.approx(want, abs=1e-3)
    cut = TransformersScorer(model, tok, max_target_tokens=2)(rows[:1])[0]
    assert cut > got[0]  # fewer target tokens scored: a larger (less negative) log-likelihood


def _words(text: str) -> list[tuple[int, str]]:
    """Whitespace-separated 'tokens' with their character offsets (each keeps its trailing space)."""
    out, i = [], 0
    for piece in text.split(" "):
        out.append((i, piece + " "))
        i += len(piece) + 1
    return out


def echo_answer(body: dict) -> dict:
    """Legacy echo + logprobs: every prompt token scores -1 except the first (None); one generated token."""
    if not body.get("echo"):
        return {"choices": [{"text": "x", "finish_reason": "length"}]}
    toks = _words(body["prompt"])
    end = len(body["prompt"])
    return {"choices": [{"text": body["prompt"] + "!", "logprobs": {
        "tokens": [t for _, t in toks] + ["!"], "text_offset": [o for o, _ in toks] + [end],
        "token_logprobs": [None] + [-1.0] * (len(toks) - 1) + [-0.5]}}]}


def vllm_answer(body: dict) -> dict:
    """vLLM's prompt_logprobs: one {token_id: {logprob, decoded_token}} per prompt token, None first."""
    if "prompt_logprobs" not in body:
        return {"error": "unsupported"}
    toks = _words(body["prompt"])
    toks[-1] = (toks[-1][0], toks[-1][1][:-1])  # the last one has no trailing space
    entries = [None] + [{str(i): {"logprob": -2.0, "rank": 1, "decoded_token": t}} for i, (_, t) in enumerate(toks)][1:]
    return {"choices": [{"text": "x", "prompt_logprobs": entries}]}


def test_openai_scorer_probes_once_and_reads_either_protocol(json_server):
    from dorag.models.scoring import OpenAIScorer

    for answer, mode, per_token in ((echo_answer, "echo", -1.0), (vllm_answer, "prompt_logprobs", -2.0)):
        scorer = OpenAIScorer(json_server(answer), "fake")
        assert scorer.probe() == mode
        # prompt "a b c " + target "d e": the target's two tokens are summed, the generated one is not
        assert scorer([("a b c ", "d e"), ("a ", "b")]) == [2 * per_token, per_token]


def test_openai_teacher_without_prompt_logprobs_is_refused(tmp_path, tiny_embedder_dir, data_dir, json_server):
    from dorag.models.scoring import OpenAIScorer
    from dorag.training.retriever import train_retriever

    url = json_server(lambda body: {"choices": [{"text": "def f(): pass", "finish_reason": "stop"}]})
    with pytest.raises(ConfigError, match=r"returns no prompt log-probs .* serve the teacher with vLLM"):
        OpenAIScorer(url, "fake").probe()
    cfg = config(tmp_path, tiny_embedder_dir, Path("unused"), data_dir,
                 replug={"teacher": "openai", "teacher_base_url": url, "teacher_model": "fake"})
    with pytest.raises(ConfigError, match="returns no prompt log-probs"):
        train_retriever(cfg)
    assert not (tmp_path / "run" / "model").exists()  # refused before anything was trained or written
    with pytest.raises(ConfigError, match="teacher_base_url: required when teacher=openai"):
        from_dict(ReplugConfig, {"teacher": "openai"})


# ---------------------------------------------------------------- data

def test_examples_and_teacher_prompts_follow_the_rag_prompt():
    from dorag.training.replug_data import prompt_renderer, to_example

    ex = to_example(pairs()[0])
    assert ex.query == pairs()[0]["query"]
    assert ex.problem == 'def sort_items(items, limit):\n    """Apply sort to every item and keep the first results."""\n'
    assert ex.target == "    out = [sort(x) for x in items]\n    return out[:limit]\n"
    plain = to_example({"query": "sort some items", "positive": "def f(x):\n    return sorted(x)"})
    assert (plain.problem, plain.lead, plain.target) == ("sort some items", "", "def f(x):\n    return sorted(x)\n")
    doc = datastore()[-1]
    text = prompt_renderer("completion", lambda t: len(t.split()), 100, None)(ex, doc)
    assert text.startswith("# # lib:zip\n# ```python\n# def zip(x):") and text.endswith(ex.problem)
    chat = prompt_renderer("chat", lambda t: len(t.split()), 100, lambda p: f"{p.messages[-1][1]}|{p.response_prefix}")(ex, doc)
    assert "Relevant code and documentation:\n# lib:zip" in chat and chat.endswith("```python\n" + ex.problem)


def test_own_documents_leave_the_datastore_and_copies_are_refused(data_dir):
    from dorag.training.replug_data import disjoint, own_ids

    kept_pairs, docs, info = disjoint(pairs(), datastore(), ReplugConfig(top_n=3))
    assert len(kept_pairs) == len(WORDS) and info == {"own_documents_removed": len(WORDS), "queries_in_datastore": 0}
    assert {d["id"] for d in docs} == {f"lib:{w}" for w in WORDS}
    chunked = [{"id": "m:sort_items#0", "text": "x", "meta": {"parent": "m:sort_items"}}, *datastore()[len(WORDS):]]
    assert len(disjoint(pairs(), chunked, ReplugConfig(top_n=3))[1]) == len(WORDS)  # chunks of an own function go too
    method = {**pairs()[0], "query_doc_id": "m:Items.sort_items", "doc_id": "m:Items.sort_items",
              "positive_id": "m:Items.sort_items#body"}
    assert own_ids(method) == {"m:Items.sort_items", "m:Items.sort_items#body", "m:Items"}  # the class lists it
    copies = [{"id": f"copy:{i}", "text": p["query"] + "\n    pass\n", "meta": {}} for i, p in enumerate(pairs()[:4])]
    with pytest.raises(DataError, match=r"4 of 16 training queries \(25.0%\) occur in the datastore"):
        disjoint(pairs(), datastore() + copies, ReplugConfig(top_n=3))
    kept_pairs, _, info = disjoint(pairs(), datastore() + copies[:1], ReplugConfig(top_n=3))
    assert len(kept_pairs) == 15 and info["queries_in_datastore"] == 1  # 1 of 16 is under the 10% limit: dropped
    with pytest.raises(DataError, match="fewer than replug.top_n=20"):
        disjoint(pairs(), datastore(), ReplugConfig(top_n=20))
    with pytest.raises(DataError, match="no training pairs"):
        disjoint([], datastore(), ReplugConfig(top_n=3))


# ---------------------------------------------------------------- end to end

def test_a_few_steps_write_the_encoder_and_a_summary_then_resume(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir, capsys):
    from sentence_transformers import SentenceTransformer

    from dorag.retrieval.embedders import Embedder
    from dorag.training.retriever import METRICS, train_retriever

    lines: list[str] = []
    res = train_retriever(config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir), progress=lines.append)
    assert capsys.readouterr().out == ""
    assert res.steps == 4 and res.model_dir == tmp_path / "run" / "model"
    assert any(l.startswith("step 4/4: loss ") and "s/step" in l for l in lines)
    assert SentenceTransformer(str(res.model_dir), device="cpu").encode(["sort the items"]).shape == (1, 32)
    assert Embedder(str(res.model_dir)).dim == 32  # any embedder option takes the trained directory
    summary = read_json(tmp_path / "run" / "train_summary.json")
    assert len(summary["loss_curve"]) == 4 and all(math.isfinite(v) and v >= 0 for v in summary["loss_curve"])
    assert summary["refreshes"] == [0, 2] and summary["s_per_step"] > 0 and summary["n_datastore"] == len(WORDS)
    assert summary["own_documents_removed"] == len(WORDS) and summary["teacher"]["kind"] == "local"
    assert summary["teacher"]["prompt_style"] == "chat"  # the tiny model has a chat template
    for side in ("before", "after"):
        assert list(summary[side]) == list(METRICS) and all(0 <= v <= 1 for v in summary[side].values())
    logged = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in m and "step_s" in m]
    assert [m["step"] for m in logged] == [1, 2, 3, 4] and [round(m["loss"], 6) for m in logged] == summary["loss_curve"]
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2", "checkpoint-4"] and not list((tmp_path / "run" / "checkpoints").glob(".*"))

    again = train_retriever(config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir, max_steps=6))
    assert again.summary["resumed_from"] == "checkpoint-4" and again.steps == 6
    assert again.summary["loss_curve"][:4] == summary["loss_curve"] and len(again.summary["loss_curve"]) == 6
    assert again.before == res.before  # measured once, on the untrained encoder
    with pytest.raises(ConfigError, match=r"trained with other settings \(gamma\)"):
        train_retriever(config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir, max_steps=8, replug={"gamma": 0.5}))
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train_retriever(config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir, resume=False))


def test_no_pairs_is_an_error(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir):
    from dorag.training.retriever import train_retriever

    cfg = config(tmp_path, tiny_embedder_dir, tiny_model_dir, data_dir)
    cfg.data.categories = ("code2text",)  # none of the pairs
    with pytest.raises(DataError, match="no pairs of categories code2text"):
        train_retriever(cfg)


def test_the_ablation_indexes_a_trained_retriever_by_path_keyed_by_its_files(tmp_path):
    from dorag.core.config import load_yaml
    from dorag.experiments.ablate import AblateConfig, plan
    from dorag.experiments.profiles import resolve_ablate_data

    data = resolve_ablate_data(load_yaml(Path(__file__).parents[2] / "configs" / "ablate-lsr.yaml"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")
    data["indexes"]["unseen-api-lsr"]["build"]["index"]["embedder"] = str(model)
    first = plan(from_dict(AblateConfig, data))
    assert first.indexes["unseen-api-lsr"].config.index.embedder == str(model)
    cell = next(c for c in first.cells if c.name == "dora_rag_lsr x unseen-api")
    (model / "model.safetensors").write_bytes(b"weights v2")  # retrained in place
    second = plan(from_dict(AblateConfig, data))
    assert second.indexes["unseen-api-lsr"].key != first.indexes["unseen-api-lsr"].key  # a new index, not a stale one
    assert next(c for c in second.cells if c.name == "dora_rag_lsr x unseen-api").key != cell.key
    assert second.indexes["unseen-api-dense"].key == first.indexes["unseen-api-dense"].key  # packaged: by name
