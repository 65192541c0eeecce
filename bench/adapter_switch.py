"""Adapter switching on one base: time per switch, and outputs equal to loading each adapter alone.

    python bench/adapter_switch.py --adapter code=runs/train-code-lora/adapter --adapter docstring=runs/train-docstring-lora/adapter
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from dorag.models.adapters import AdapterSet
from dorag.models.loading import ModelConfig, load_transformers

PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"


def logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--adapter", action="append", required=True, help="NAME=DIR, two or more")
    ap.add_argument("--switches", type=int, default=50)
    args = ap.parse_args()
    adapters = dict(a.split("=", 1) for a in args.adapter)

    base, tok = load_transformers(ModelConfig(name=args.model))
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    aset = AdapterSet(base)
    for name, path in adapters.items():
        aset.load(name, path)
    names = list(adapters)
    times = []
    for i in range(args.switches):
        t0 = time.perf_counter()
        aset.use(names[i % len(names)])
        times.append(time.perf_counter() - t0)
    shared = {}
    for name in ["base", *names]:
        with aset.using(name) as m:
            shared[name] = logits(m, ids)
    same = {}
    for name, path in adapters.items():
        alone_base, _ = load_transformers(ModelConfig(name=args.model))
        alone = AdapterSet(alone_base)
        alone.load(name, path)
        with alone.using(name) as m:
            same[name] = bool(torch.equal(logits(m, ids), shared[name]))
        del alone, alone_base
    figures = {
        "adapters": adapters,
        "switch_ms_median": round(statistics.median(times) * 1000, 3),
        "switch_ms_max": round(max(times) * 1000, 3),
        "identical_to_loading_alone": same,
        "adapters_change_output": {n: bool(not torch.equal(shared[n], shared["base"])) for n in names},
    }
    print(json.dumps(figures, indent=2))
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
