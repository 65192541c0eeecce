"""The ablation's two speed claims, measured against the reference ways of doing the same thing.

1. Folded adapters: a LoRA or DoRA cell generates with the adapter merged into the weights at load. The
   reference is PEFT's unmerged adapter (what `PeftModel.from_pretrained` gives). Same prompts, same greedy
   settings: tokens/s of each, the ratio, and how many outputs are identical.
2. Caching: a re-run of a finished ablation against the time the first run took (from its cells).

    python bench/ablation.py --ablation runs/quickstart [--dtype bfloat16] [--n-prompts 8] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dorag.core.config import from_dict, load_yaml
from dorag.core.io import read_json
from dorag.evaluation.benchmarks import load_problems
from dorag.models.generator import GenerationParams
from dorag.models.hf import TransformersGenerator
from dorag.models.loading import ModelConfig, load_generator, load_transformers


def throughput(gen, prompts, params) -> tuple[float, list[str]]:
    from dorag.data.prompts import PromptConfig, build_prompt, resolve_style

    style = resolve_style(PromptConfig(), True)
    built = [build_prompt(p, PromptConfig(), style) for p in prompts]
    t0 = time.perf_counter()
    outs = gen.generate(built, params)
    wall = time.perf_counter() - t0
    tokens = sum(o[0].n_tokens for o in outs)
    return tokens / wall, [o[0].text for o in outs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", default="runs/quickstart", help="a finished ablation directory")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each, alternating; the best counts")
    args = ap.parse_args()
    root = Path(args.ablation)
    ablation = read_json(root / "ablation.json")
    model_name = load_yaml(root / "config.yaml")["model"]["name"]
    prompts = load_problems("humaneval", limit=args.n_prompts)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, batch_size=args.n_prompts)
    figures: dict[str, dict] = {}
    for name, info in ablation["adapters"].items():
        path = str(Path(info["dir"]) / "adapter") if not info.get("given") else info["dir"]
        cfg = from_dict(ModelConfig, {"name": model_name, "dtype": args.dtype, "adapters": {name: path}, "adapter": name})
        folded = load_generator(from_dict(ModelConfig, {**cfg.__dict__, "merge": True}))
        unmerged = load_generator(cfg)  # PEFT's adapter layers on the base, as peft loads them
        # alternate the two, best of `repeats` each: a load change on the machine hits both alike
        runs_f, runs_u = [], []
        for _ in range(args.repeats):
            runs_f.append(throughput(folded, prompts, params))
            runs_u.append(throughput(unmerged, prompts, params))
        tps_folded, out_folded = max(runs_f, key=lambda r: r[0])
        tps_unmerged, out_unmerged = max(runs_u, key=lambda r: r[0])
        del folded, unmerged
        same = sum(a == b for a, b in zip(out_folded, out_unmerged))
        figures[name] = {"method": info.get("method"), "folded_tok_s": round(tps_folded, 1),
                         "peft_unmerged_tok_s": round(tps_unmerged, 1), "ratio": round(tps_folded / tps_unmerged, 2),
                         "identical_outputs": f"{same}/{len(prompts)}"}
        print(f"{name:6} ({info.get('method')}): folded {tps_folded:6.1f} tok/s vs PEFT unmerged {tps_unmerged:6.1f} "
              f"tok/s = {tps_folded / tps_unmerged:.2f}x; identical greedy outputs {same}/{len(prompts)}")
    base_model, tok = load_transformers(from_dict(ModelConfig, {"name": model_name, "dtype": args.dtype}))
    tps_base, _ = throughput(TransformersGenerator(base_model, tok), prompts, params)
    print(f"base model: {tps_base:.1f} tok/s")
    del base_model

    from dorag.experiments.ablate import AblateConfig
    from dorag.experiments.runner import run_ablation

    first = sum(c.get("wall_s") or 0 for c in ablation["cells"])
    cfg = from_dict(AblateConfig, {**load_yaml(root / "config.yaml"), "report": False})
    t0 = time.perf_counter()
    run_ablation(cfg)
    rerun = time.perf_counter() - t0
    print(f"re-run of the finished ablation: {rerun:.1f} s vs {first:.0f} s of cell work in its first run "
          f"({first / rerun:.0f}x)")
    print(json.dumps({"adapters": figures, "base_tok_s": round(tps_base, 1), "rerun_s": round(rerun, 2),
                      "first_cells_s": round(first, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
