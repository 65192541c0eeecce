"""`dorag data prepare|corpus|synth`."""

from __future__ import annotations

from collections.abc import Callable
from typing import List, Optional

import typer

from dorag.cli.common import build_config, echo

app = typer.Typer(help="Build training data (SFT pairs) from code or instruction sets.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. eval_fraction=0.1"),
    task: Optional[str] = typer.Option(None, help="code (docstring->code) or docstring (code->docstring)"),
    source: Optional[List[str]] = typer.Option(None, help="stdlib, package:NAME, a directory, or a JSONL/JSON file; repeatable"),
    out: Optional[str] = typer.Option(None, help="training JSONL (held-out split beside it)"),
    limit: Optional[int] = typer.Option(None, help="at most N training examples"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config"),
) -> None:
    """Extract pairs (default: the standard library), decontaminate against benchmarks, split, write."""
    from dorag.experiments.prepare import PrepareConfig, prepare as run_prepare

    cfg = build_config(PrepareConfig, config, {"task": task, "sources": source or None, "out": out, "limit": limit},
                       overrides or [])
    report = run_prepare(cfg)
    echo("dropped: " + ", ".join(f"{k}={v}" for k, v in report.dropped.items()))
    print(f"train: {report.train} ({report.n_train} examples)\neval:  {report.eval} ({report.n_eval} examples)")


@app.command("corpus")
def corpus(
    source: Optional[List[str]] = typer.Option(None, help="stdlib (default), package:NAME, apidoc:PACKAGE, "
                                               "codesearchnet:DIR|LANG, unseen-api, spider-schema, gretel-schema:FILE, a directory or a JSONL/CSV file; repeatable"),
    out: str = typer.Option(..., "--out", "-o", help="corpus JSONL to write (id, text, meta)"),
    max_units: int = typer.Option(400, help="chunk documents longer than this many words"),
    classes: bool = typer.Option(True, help="add one document per class"),
    exclude_leaking: Optional[str] = typer.Option(None, help="drop documents that leak this benchmark (e.g. humaneval)"),
) -> None:
    """Build a retrieval corpus from code or text sources (chunked, deduplicated, unique ids)."""
    from dorag.core.io import write_jsonl
    from dorag.experiments.indexing import corpus_from_sources

    docs = corpus_from_sources(source or ["stdlib"], max_units, classes)
    if exclude_leaking:
        from dorag.data.leakage import LeakageChecker, drop_leaking
        from dorag.evaluation.benchmarks import load_problems

        findings = LeakageChecker(load_problems(exclude_leaking, None, None, None)).scan(docs)
        kept = drop_leaking(docs, findings)
        echo(f"dropped {len(docs) - len(kept)} documents that leak {exclude_leaking}")
        docs = kept
    n = write_jsonl(out, docs)
    print(f"{out}: {n} documents")


@app.command("synth")
def synth(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. min_query_words=5 ngram=10"),
    corpus: Optional[List[str]] = typer.Option(None, help="code to mine: stdlib (default), package:NAME, a directory, "
                                               "a .py file or a corpus JSONL; repeatable"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="output directory (default data/synth)"),
    categories: Optional[str] = typer.Option(None, help="comma-separated: text2code,code2text,code2code,hybrid"),
    max_pairs: Optional[int] = typer.Option(None, help="at most N pairs (round-robin over the categories)"),
    held_out: Optional[float] = typer.Option(None, help="share held out as queries + qrels (default 0.1)"),
    source: Optional[str] = typer.Option(None, help="mined (default: relations read off the AST) or llm"),
    llm_base_url: Optional[str] = typer.Option(None, help="source llm: an OpenAI-compatible server, e.g. http://localhost:8000/v1"),
    llm_model: Optional[str] = typer.Option(None, help="source llm: the served model name, or a local model "
                                            "(default: the packaged default model)"),
    check_corpus: Optional[List[str]] = typer.Option(None, help="a corpus or index directory the queries must stay out of; repeatable"),
    seed: Optional[int] = typer.Option(None, help="seed of the shuffles and the split"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config (configs/synth-*.yaml)"),
) -> None:
    """Synthesise (query, positive) pairs for retriever training, with held-out qrels for `dorag index evaluate`."""
    from dorag.data.synth import SynthConfig, check_documents, records_from_sources, synthesize, write_synth

    cfg = build_config(SynthConfig, config, {
        "sources": corpus or None, "out": out, "categories": categories, "max_pairs": max_pairs, "held_out": held_out,
        "source": source, "check_corpus": check_corpus or None, "seed": seed}, overrides or [])
    records = records_from_sources(cfg.sources)
    echo(f"{len(records)} functions from {', '.join(cfg.sources)}")
    generate = _llm_generate(llm_base_url, llm_model) if cfg.source == "llm" else None
    result = synthesize(records, cfg, generate, check_documents(cfg.check_corpus), progress=echo)
    report = write_synth(result, cfg)
    for cat in cfg.categories:
        print(f"{cat:<10} train {report['train'].get(cat, 0):>6}  held-out {report['heldout'].get(cat, 0):>5}")
    print("dropped: " + (", ".join(f"{k}={v}" for k, v in report["dropped"].items()) or "none"))
    print(f"queries in the corpus: {report['query_in_corpus']['fraction']:.1%} (limit {cfg.max_query_in_corpus:.0%}); "
          f"{len(report['query_doc_ids'])} documents gave query text (listed in report.json)")
    print(f"wrote {report['n_train']} train + {report['n_heldout']} held-out pairs, {report['n_corpus']} corpus documents "
          f"to {cfg.out}")


def _llm_generate(base_url: str | None, model: str | None) -> Callable[[list[str]], list[str]]:
    """A generate(prompts) -> texts over an OpenAI-compatible endpoint, or the local model (chat prompts, greedy)."""
    from dorag.cli.common import env_defaults
    from dorag.core.config import from_dict
    from dorag.core.types import Prompt
    from dorag.models.generator import GenerationParams
    from dorag.models.loading import ModelConfig, load_generator
    from dorag.models.registry import DEFAULT_MODEL

    env = {k.split(".", 1)[1]: v for k, v in env_defaults().items() if k.startswith("model.")}
    mcfg = from_dict(ModelConfig, {**env, "name": model or DEFAULT_MODEL,
                                   **({"backend": "openai", "base_url": base_url} if base_url else {})})
    generator = load_generator(mcfg, progress=echo)
    params = GenerationParams(max_new_tokens=160, temperature=0.0)

    def generate(prompts: list[str]) -> list[str]:
        outs = generator.generate([Prompt(messages=(("user", p),)) for p in prompts], params)
        return [o[0].text if o else "" for o in outs]

    return generate


@app.command("selfgen")
def selfgen(
    overrides: Optional[List[str]] = typer.Argument(None, help="dotted overrides, e.g. n_samples=8 fewshot=2"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="output directory (default data/selfgen); re-run to resume"),
    n_seeds: Optional[int] = typer.Option(None, help="seed functions to use (default 40)"),
    writer: Optional[str] = typer.Option(None, help="the writer model (default: the packaged default model), or the "
                                         "served name at --llm-base-url"),
    llm_base_url: Optional[str] = typer.Option(None, help="an OpenAI-compatible server, e.g. http://localhost:8000/v1"),
    source: Optional[List[str]] = typer.Option(None, help="seed code: stdlib (default), package:NAME, a directory; repeatable"),
    seed: Optional[int] = typer.Option(None, help="seed of the seed order, the sampling and the held-out split"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML config (configs/selfgen-*.yaml)"),
) -> None:
    """Self-generated, execution-verified problems: the model writes problem, solutions and tests; CodeT keeps one."""
    from dorag.cli.common import env_defaults
    from dorag.experiments.selfgen import SelfGenConfig, run_selfgen
    from dorag.models.loading import check_available, check_model_name, load_generator

    cfg = build_config(SelfGenConfig, config, {"out": out, "n_seeds": n_seeds, "writer": writer,
                                               "llm_base_url": llm_base_url, "sources": source or None, "seed": seed},
                       overrides or [])
    env = {k.split(".", 1)[1]: v for k, v in env_defaults().items() if k.startswith("model.")}
    mcfg = cfg.model_config(**env)
    if mcfg.backend == "transformers":  # an unknown model fails before the standard library is read
        check_model_name(mcfg)
        check_available(mcfg.name, mcfg.cache_dir)
    report = run_selfgen(cfg, lambda: load_generator(mcfg, progress=echo), progress=echo)
    c = report["counts"]
    print(f"seeds {c['seeds_done']}/{report['seeds_planned']}: {c['problems_written']} problems written, "
          f"{c['problems_parsed']} parsed, {c['problems_kept']} kept ({report['pass_rate']:.0%} of parsed); "
          f"{c['solutions_sampled']} solutions, {c['tests_written']} tests (+{c['tests_from_docstrings']} from docstrings)")
    print("decontamination drops: " + (", ".join(f"{k}={v}" for k, v in report["decontamination_drops"].items()) or "none"))
    print(f"wrote {c['train']} train records and {c['heldout']} held-out problems to {cfg.out}")
