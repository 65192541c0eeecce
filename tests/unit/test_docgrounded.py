"""Doc-grounded (RAFT) examples: oracle vs distractors, exclusion by id, consistent API renaming, held-out modules."""

from __future__ import annotations

import ast
import textwrap

import pytest

from dorag.data.ast_extract import extract_from_tree
from dorag.data.corpus import from_functions
from dorag.data.docgrounded import DocGroundedConfig, build_examples, doc_root, unexplained_names
from dorag.data.rename import RenameMap, identifiers, rename_code

LIB = {
    "geo.py": '''
        def scale(values, factor=2):
            """Multiply every value in the list by factor and return the new list."""
            return [v * factor for v in values]


        def shift(values, offset):
            """Add offset to every value in the list and return the new list."""
            return [v + offset for v in values]
        ''',
    "stats.py": '''
        import geo
        from geo import shift


        def normalise(values, top):
            """Scale the values so that the largest one becomes top, and return them."""
            return geo.scale(values, factor=top / max(values))


        def center(values):
            """Shift the values so that their mean is zero, and return them as a list."""
            return shift(values, offset=-sum(values) / len(values))


        def doubled(values):
            """Return every value of the list doubled, using the module's own helper."""
            return twice(values, times=2)


        def twice(values, times):
            """Repeat the multiplication of each value by times and return the results."""
            return [v * times for v in values]
        ''',
    "extra.py": '''
        import geo


        def spread(values, width):
            """Scale the values so that they span the given width, and return the list."""
            return geo.scale(values, factor=width / (max(values) - min(values)))
        ''',
}


@pytest.fixture()
def library(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    for name, text in LIB.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    records = list(extract_from_tree(root))
    docs = from_functions(records)
    return records, docs


def _build(library, **over):
    records, docs = library

    def retrieve(problem, k):  # every other document: the builder must exclude the own and oracle ones by id
        return list(docs)[:k]

    cfg = DocGroundedConfig(**{"heldout_modules": 0.0, "min_words": 3, **over})
    return build_examples(records, docs, retrieve, lambda d: len(d["text"]) // 4 + 8, cfg, seed=1)


def test_oracle_examples_carry_the_called_apis_and_never_their_own_document(library):
    train, held, rep = _build(library, oracle_p=1.0, rename_p=0.0)
    by_name = {e["problem"]["entry_point"]: e for e in train}
    assert {"normalise", "center", "doubled", "spread"} <= set(by_name)
    assert "scale" not in by_name  # calls no API of the library: not an example
    assert by_name["normalise"]["meta"]["oracle"] == ["geo:scale"]
    assert by_name["doubled"]["meta"]["oracle"] == ["stats:twice"]
    for ex in train:
        ids = [d["id"] for d in ex["docs"]]
        own = ex["id"].removeprefix("grounded:")
        assert own not in ids and all(doc_root(d) != own for d in ex["docs"])  # excluded by id
        body = ex["target"][len(ex["problem"]["prompt"]):]
        assert not any(body.strip() in d["text"] for d in ex["docs"])  # so the target never leaks
        assert set(ex["meta"]["oracle"]) <= set(ids)
        assert len(ex["docs"]) == 1 + 3 or len(ex["docs"]) == len(library[1]) - 1
    assert rep.with_oracle == len(train) and rep.distractors_only == 0


def test_a_copy_of_the_target_under_another_id_is_not_a_distractor(library):
    # the stdlib holds some functions twice (a vendored copy, an alias with its own body): exclusion by id
    # misses the copy, so the builder also drops any document that the leakage check says holds the answer
    records, docs = library
    normalise = next(d for d in docs if d["id"] == "stats:normalise")
    copy = {"id": "vendored:normalise_copy", "text": "# vendored\n" + normalise["text"].replace("values", "xs"),
            "meta": {}}
    train, _, rep = build_examples(records, [*docs, copy], lambda problem, k: [copy, *docs][:k],
                                   lambda d: len(d["text"]) // 4 + 8,
                                   DocGroundedConfig(heldout_modules=0.0, min_words=3, oracle_p=1.0, rename_p=0.0), seed=1)
    ex = next(e for e in train if e["problem"]["entry_point"] == "normalise")
    assert copy["id"] not in [d["id"] for d in ex["docs"]] and len(ex["docs"]) == 4
    assert rep.dropped["distractor_holds_target"] >= 1


def test_distractor_only_examples_hold_no_oracle(library):
    train, _, rep = _build(library, oracle_p=0.0)
    assert rep.with_oracle == 0 and rep.renamed == 0
    for ex in train:
        apis = {a.replace(".", ":", 1) if ":" not in a else a for a in ex["meta"]["apis"]}
        ids = {d["id"] for d in ex["docs"]}
        assert ex["meta"]["oracle"] == [] and not any(i in ids for i in ("geo:scale", "geo:shift", "stats:twice")
                                                      if i.split(":")[1] in str(apis))


def test_renaming_is_consistent_between_target_prompt_and_documents(library):
    train, _, rep = _build(library, oracle_p=1.0, rename_p=1.0)
    renamed = [e for e in train if e["meta"]["renamed"]]
    assert rep.renamed == len(renamed) >= 4
    lib_names = identifiers("\n".join(LIB.values()))
    for ex in renamed:
        rename = ex["meta"]["rename"]
        invented = {*rename["modules"].values(), *rename["apis"].values(),
                    *(n for p in rename["params"].values() for n in p.values())}
        assert invented and not invented & lib_names  # new names, not the library's
        assert unexplained_names(ex) == set()  # every invented name the target uses is shown to the model
        ast.parse(ex["target"])
        ast.parse(ex["problem"]["prompt"])
        for d in ex["docs"]:
            ast.parse(d["text"])
        assert ex["target"].startswith(ex["problem"]["prompt"])
        body = ex["target"][len(ex["problem"]["prompt"]):]
        for old in rename["apis"]:  # the real API and keyword names are gone from the body
            assert old.rsplit(".", 1)[1] not in identifiers(body)
        for params in rename["params"].values():
            assert not set(params) & identifiers(body) - {"values"}
    spread = next(e for e in renamed if e["problem"]["entry_point"] == "spread")
    new_mod, new_scale = spread["meta"]["rename"]["modules"]["geo"], spread["meta"]["rename"]["apis"]["geo.scale"]
    assert f"import {new_mod}\n" in spread["problem"]["prompt"] and f"{new_mod}.{new_scale}(" in spread["target"]
    oracle = next(d for d in spread["docs"] if d["id"] == "geo:scale")
    assert oracle["meta"]["module"] == new_mod and oracle["meta"]["qualname"] == new_scale
    assert oracle["text"].startswith(f"def {new_scale}(")


def test_rename_code_rewrites_every_reference_form_and_still_parses():
    m = RenameMap(modules={"re": "vorim"}, apis={("re", "sub"): "tesul", ("re", "compile"): "bakor"},
                  params={("re", "sub"): {"count": "lumo"}})
    code = "import re\nfrom re import compile as c, sub\n\ndef f(s):\n    # re.sub it\n    x = re.sub('a', 'b', s, count=1)\n" \
           "    return sub(x, count=2), re.compile, c\n"
    out = rename_code(code, m)
    assert out == ("import vorim\nfrom vorim import bakor as c, tesul\n\ndef f(s):\n    # re.sub it\n"
                   "    x = vorim.tesul('a', 'b', s, count=1)\n    return tesul(x, count=2), vorim.bakor, c\n").replace(
                       "count=1", "lumo=1").replace("count=2", "lumo=2")
    doc = "def sub(pattern, repl, string, count=0):\n    return _sub(pattern, repl, string, count)\n"
    assert rename_code(doc, m, defines="re") == ("def tesul(pattern, repl, string, lumo=0):\n"
                                                 "    return _sub(pattern, repl, string, lumo)\n")


def test_held_out_modules_are_whole(library):
    train, held, rep = _build(library, heldout_modules=0.5)
    assert held and train
    assert not {e["meta"]["module"] for e in train} & {e["meta"]["module"] for e in held}
    assert {e["meta"]["module"] for e in held} <= set(rep.heldout_module_names)


def _textwrap_library():
    import sysconfig
    from pathlib import Path

    from dorag.data.ast_extract import extract_functions

    path = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    records = extract_functions(path.read_text(), path=str(path), module="textwrap")
    return records, from_functions(records)


def _task(i, body, test):
    from dorag.data.sft_data import make_problem_example

    prompt = (f"import textwrap\n\n\ndef block_{i}(text, pad):\n"
              f'    """Remove the common indentation of text, then put pad in front of every line."""\n')
    return make_problem_example(f"t{i}", {"task_id": f"t/{i}", "prompt": prompt, "entry_point": f"block_{i}",
                                          "test": test}, prompt + body, source="selfgen")


def test_tested_tasks_are_checked_by_execution_against_a_wrapper_of_the_renamed_library():
    from dorag.evaluation.sandbox import Sandbox

    records, docs = _textwrap_library()
    test = "def check(candidate):\n    assert candidate('  a\\n  b\\n', '> ') == '> a\\n> b\\n'\n"
    good = _task(1, "    return textwrap.indent(textwrap.dedent(text), pad)\n", test)
    kw = _task(2, "    return textwrap.indent(textwrap.dedent(text), prefix=pad)\n", test)
    wrong = _task(3, "    return textwrap.indent(text, pad)\n", test)  # passes no test: must be dropped

    def check(programs):
        with Sandbox() as box:
            return [r.passed for r in box.run_many(programs)]

    cfg = DocGroundedConfig(oracle_p=1.0, rename_p=1.0, heldout_modules=0.0)
    train, _, rep = build_examples(records, docs, lambda p, k: list(docs)[:k], lambda d: 50, cfg, seed=3,
                                   tasks=[good, kw, wrong], check=check)
    train = [e for e in train if e["id"].startswith("grounded:task:")]  # textwrap's own functions are examples too
    ids = {e["id"] for e in train}
    assert rep.checked_by_execution == 3 and rep.dropped["failed_execution_check"] == 1
    assert ids == {"grounded:task:t1:block_1", "grounded:task:t2:block_2"}
    for ex in train:
        assert ex["meta"]["renamed"] and "textwrap" not in identifiers(ex["target"])
        assert unexplained_names(ex) == set()
    renamed_kw = next(e for e in train if e["id"].endswith("block_2"))
    new_prefix = renamed_kw["meta"]["rename"]["params"]["textwrap.indent"]["prefix"]
    assert f"{new_prefix}=pad" in renamed_kw["target"]  # the keyword is renamed, and the wrapper maps it back
