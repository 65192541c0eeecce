"""dorag's AST pair extraction against the plain loop most fine-tuning scripts use, on the standard library.

The plain loop (CodeSearchNet-style) parses every file, walks the tree with `ast.walk`, and keeps each
function that has a docstring: the docstring is the input and `ast.get_source_segment` the target.
dorag's extractor (`dorag data prepare --source stdlib`) walks module and class bodies only, so nested
helpers are not pairs of their own. It records the class header and the module's imports as context, and
keeps a copy of each body without its docstring, which is the input of the docstring task. Before pairing
it drops private functions, trivial or auto-generated docstrings, oversized bodies and duplicates.

The script prints both wall times, their ratio, how many pairs each keeps, and four measures of what the
plain loop lets through:
- docstring-task inputs (the function's source) that contain the answer, against dorag's;
- nested functions;
- exact duplicates (same docstring or same body);
- docstrings under 4 words.

    python bench/data.py
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter

from timing import best_of

from dorag.data.ast_extract import STDLIB_EXCLUDE, dedupe_key, extract_stdlib, iter_python_files, stdlib_root
from dorag.data.sft_data import pairs_from_functions


def plain_pairs() -> list[dict]:
    out = []
    for path in iter_python_files(stdlib_root(), STDLIB_EXCLUDE):
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        top = {id(n) for n in tree.body} | {id(m) for n in tree.body if isinstance(n, ast.ClassDef) for m in n.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.append({"name": node.name, "docstring": doc, "code": ast.get_source_segment(source, node) or "",
                                "nested": id(node) not in top})
    return out


def dorag_pairs() -> tuple[list[dict], dict[str, int]]:
    return pairs_from_functions(extract_stdlib(), "code")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timings for each side")
    args = ap.parse_args()
    timings = {name: best_of(fn, args.repeat) for name, fn in (("dorag", dorag_pairs), ("plain", plain_pairs))}
    (t_dorag, (ours, dropped)), (t_plain, plain) = timings["dorag"], timings["plain"]

    doc_keys = Counter(dedupe_key(p["docstring"]) for p in plain)
    def contains(text: str, answer: str) -> bool:  # the whole answer, whitespace folded
        return " ".join(answer.split()) in " ".join(text.split())

    leaks_plain = sum(contains(p["code"], p["docstring"]) for p in plain)
    doc_pairs, _ = pairs_from_functions(extract_stdlib(), "docstring")
    leaks_dorag = sum(contains(ex["messages"][0]["content"], ex["messages"][-1]["content"]) for ex in doc_pairs)
    figures = {
        "dorag_s": round(t_dorag, 2),
        "plain_s": round(t_plain, 2),
        "speedup": round(t_plain / t_dorag, 2),
        "pairs": {"dorag": len(ours), "plain": len(plain)},
        "dorag_dropped": dropped,
        "plain_lets_through": {
            "docstring_task_input_contains_the_answer": leaks_plain,
            "nested_functions": sum(p["nested"] for p in plain),
            "duplicate_docstrings": sum(c - 1 for c in doc_keys.values() if c > 1),
            "docstrings_under_4_words": sum(len(p["docstring"].split()) < 4 for p in plain),
        },
        "dorag_docstring_task_inputs_containing_the_answer": f"{leaks_dorag}/{len(doc_pairs)}",
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
