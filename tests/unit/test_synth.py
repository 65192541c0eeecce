"""Synthetic retriever-training pairs: mining, filters, dedup, disjointness, split, determinism, LLM source."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from dorag.core.errors import DataError
from dorag.core.io import read_json, read_jsonl
from dorag.data.synth import (CATEGORIES, SynthConfig, norm, pair_problem, query_overlap, read_pairs,
                              records_from_sources, synthesize, write_synth)
from dorag.data.synth_candidates import Candidate, body, clean_llm
from dorag.retrieval.metrics import read_qrels

SHAPES = textwrap.dedent('''
    import math


    def circle_area(radius):
        """Compute the area of a circle from its radius."""
        check_positive(radius, "radius")
        return math.pi * radius ** 2


    def check_positive(value, name):
        """Raise ValueError when a measurement is zero or negative."""
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
        return value


    def rectangle_area(width, height, unit="m"):
        """Multiply the two sides of a rectangle to get its surface."""
        check_positive(width, "width")
        check_positive(height, "height")
        return width * height


    def triangle_perimeter(a, b, c):
        """Sum the three side lengths of a triangle after validating them."""
        for side in (a, b, c):
            check_positive(side, "side")
        return a + b + c


    def to_degrees(angle_radians, precision, clamp):
        """Convert an angle given in radians into degrees, rounded to a precision."""
        value = math.degrees(angle_radians)
        if clamp:
            value = value % 360
        return round(value, precision)


    def stub_one():
        """Auto-generated stub. Do not edit."""
        pass


    def stub_two():
        """TODO"""
        return None


    class Polygon:
        """A closed shape made of straight sides."""

        def __init__(self, sides):
            """Store the side lengths of the polygon as a list."""
            self.sides = list(sides)
            self.validate_sides()

        def validate_sides(self):
            """Check that every side of the polygon has a positive length."""
            for s in self.sides:
                check_positive(s, "side")
            return True

        def perimeter(self):
            """Add up the lengths of all the sides of the polygon."""
            self.validate_sides()
            return sum(self.sides)

        def longest_side(self):
            """Return the greatest side length among the polygon's sides."""
            return max(self.sides, default=0)
''')

TEXTS = textwrap.dedent('''
    def word_count(text, separator, strip):
        """Count the words in a piece of text split on a separator."""
        parts = text.split(separator)
        if strip:
            parts = [p.strip() for p in parts]
        return len([p for p in parts if p])


    def shout(text):
        """Turn a message into upper case and add an exclamation mark."""
        cleaned = normalise_spaces(text)
        return cleaned.upper() + "!"


    def normalise_spaces(text):
        """Collapse runs of whitespace inside a string into single spaces."""
        return " ".join(text.split())


    def reverse_words(text, keep_case, limit):
        """Reverse the order of the words in a sentence, up to a limit."""
        words = normalise_spaces(text).split(" ")[:limit]
        joined = " ".join(reversed(words))
        return joined if keep_case else joined.lower()


    def copy_of_shout(text):
        """Turn a message into upper case and add an exclamation mark."""
        cleaned = " ".join(text.split())
        return cleaned.upper() + "!!"
''')


@pytest.fixture()
def pkg(tmp_path: Path) -> Path:
    root = tmp_path / "geo"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "shapes.py").write_text(SHAPES)
    (root / "texts.py").write_text(TEXTS)
    return root


def cfg(tmp_path: Path, **kw) -> SynthConfig:
    return SynthConfig(**{"out": str(tmp_path / "out"), "held_out": 0.25, **kw})


def test_mining_builds_every_category_with_well_formed_pairs(pkg, tmp_path):
    records = records_from_sources([str(pkg)])
    res = synthesize(records, cfg(tmp_path))
    pairs = res.train + res.heldout
    assert {p["category"] for p in pairs} == set(CATEGORIES)
    for p in pairs:
        assert {"query", "positive", "category", "source", "doc_id", "positive_id", "query_doc_id"} <= set(p)
        assert p["source"] == "mined" and p["query"].strip() and p["positive"].strip()
    for t2c in (p for p in pairs if p["category"] == "text2code"):  # the function's own docstring is gone
        assert norm(t2c["query"]) not in norm(t2c["positive"]) and t2c["positive"].startswith(("import", "def", "class"))
    calls = [p for p in pairs if p["relation"] == "callsite->definition"]
    assert calls
    for p in calls:  # the query calls the callee; the positive defines it
        callee = p["doc_id"].split(":")[1].split(".")[-1]
        assert f"{callee}(" in p["query"] and f"def {callee}(" in p["positive"]
    assert all(p["query_doc_id"] in res.query_doc_ids for p in pairs)


def test_body_drops_signature_and_docstring():
    rec = next(r for r in records_from_sources_text(SHAPES) if r.name == "triangle_perimeter")
    assert body(rec) == 'for side in (a, b, c):\n    check_positive(side, "side")\nreturn a + b + c\n'


def records_from_sources_text(source: str):
    from dorag.data.ast_extract import extract_functions

    return extract_functions(source, "shapes.py", "geo.shapes")


def test_queries_stay_out_of_the_written_corpus(pkg, tmp_path):
    res = synthesize(records_from_sources([str(pkg)]), cfg(tmp_path))
    queries = [p["query"] for p in res.train + res.heldout]
    assert all(score < 0.5 for score, _ in query_overlap(queries, res.corpus))
    for q in queries:
        assert not any(norm(q) in norm(d["text"]) for d in res.corpus)
    # a function that supplied query text is never also a positive (callees may serve several call sites)
    positives = {p["doc_id"] for p in res.train + res.heldout if p["doc_id"] != p["query_doc_id"]}
    own = {p["query_doc_id"] for p in res.train + res.heldout}
    assert not positives & own


def test_filters_and_dedup_are_counted(pkg, tmp_path):
    res = synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, categories=("text2code",)))
    assert res.dropped["trivial_docstring"] == 2  # "Auto-generated stub. Do not edit.", "TODO"
    assert res.dropped["duplicate_query"] == 1  # shout and copy_of_shout share their docstring
    queries = [norm(p["query"]) for p in res.train + res.heldout]
    assert len(queries) == len(set(queries)) == 13  # 16 documented functions less those three
    both = synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, categories=("text2code", "code2text")))
    texts = [norm(t) for p in both.train + both.heldout for t in (p["query"], p["positive"])]
    assert len(texts) == len(set(texts))  # no text is both a query and a positive


def _cand(query: str, positive: str, relation: str = "signature->body") -> Candidate:
    rec = records_from_sources_text(SHAPES)[0]
    return Candidate("code2code", relation, rec, rec, query, positive, "body")


def test_pair_filters():
    c = SynthConfig()
    code = "value = math.degrees(angle)\nreturn round(value, precision) + offset * scale"
    assert pair_problem(_cand("def f(angle, precision, offset, scale):\n" + code, code), c) == "query_contains_positive"
    assert pair_problem(_cand("to degrees", code), c) == "short_query"
    assert pair_problem(_cand("convert the angle into degrees please", "pass"), c) == "trivial_positive"
    steps = "a = load(path)\nb = parse(a, strict=True)\nc = validate(b, schema)\nreturn transform(c, options)\n"
    copied = "please a = load(path) b = parse(a, strict=True) c = validate(b, schema) return"
    assert pair_problem(_cand(copied, steps), c) == "query_copies_positive"
    assert pair_problem(_cand("convert an angle to degrees rounded to a precision", code), c) is None


def test_disjointness_check_raises_above_the_threshold(pkg, tmp_path):
    from dorag.data.corpus import from_code

    records = records_from_sources([str(pkg)])
    with_docstrings = from_code(pkg)  # a RAG corpus that still holds every docstring the queries come from
    with pytest.raises(DataError, match=r"occur in the retrieval corpus.*limit is 10%") as err:
        synthesize(records, cfg(tmp_path), check_docs=with_docstrings)
    assert "\n" not in str(err.value)
    res = synthesize(records, cfg(tmp_path, max_query_in_corpus=1.0), check_docs=with_docstrings)
    assert res.dropped["query_in_corpus"] >= 1 and res.in_corpus_fraction > 0.1
    kept = [p["query"] for p in res.train + res.heldout]
    assert all(s < 0.5 for s, _ in query_overlap(kept, with_docstrings))


def test_empty_pair_set_is_a_one_line_error(tmp_path):
    src = tmp_path / "bare"
    src.mkdir()
    (src / "m.py").write_text("def a():\n    pass\n\ndef b():\n    '''TODO'''\n    return None\n")
    with pytest.raises(DataError, match=r"^no pairs: all \d+ candidates were dropped \(.*trivial") as err:
        synthesize(records_from_sources([str(src)]), cfg(tmp_path, categories=("text2code",)))
    assert "\n" not in str(err.value)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="hold no function"):
        synthesize(records_from_sources([str(tmp_path / "none")]), cfg(tmp_path))


def test_heldout_split_is_disjoint_and_written_as_qrels(pkg, tmp_path):
    c = cfg(tmp_path)
    res = synthesize(records_from_sources([str(pkg)]), c)
    assert res.heldout and res.train
    assert not {p["positive_id"] for p in res.train} & {p["positive_id"] for p in res.heldout}
    assert not {norm(p["query"]) for p in res.train} & {norm(p["query"]) for p in res.heldout}
    report = write_synth(res, c)
    out = Path(c.out)
    assert read_jsonl(out / "train.jsonl") == res.train and read_jsonl(out / "heldout.jsonl") == res.heldout
    corpus_ids = {d["id"] for d in read_jsonl(out / "corpus.jsonl")}
    qrels = read_qrels(out / "qrels" / "test.tsv")
    queries = {q["_id"]: q["text"] for q in read_jsonl(out / "queries.jsonl")}
    assert len(qrels) == len(res.heldout) == len(queries)
    for qid, rel in qrels.items():
        (doc, score), = rel.items()
        assert doc in corpus_ids and score == 1.0
        assert any(p["query"] == queries[qid] and p["positive_id"] == doc for p in res.heldout)
    assert report["n_train"] == len(res.train) and read_json(out / "report.json")["query_doc_ids"] == res.query_doc_ids
    cat = res.train[0]["category"]
    assert read_pairs(out / "train.jsonl", [cat]) == [p for p in res.train if p["category"] == cat]


def test_deterministic_with_the_seed(pkg, tmp_path):
    records = records_from_sources([str(pkg)])
    a = synthesize(records, cfg(tmp_path, seed=3))
    b = synthesize(list(records), cfg(tmp_path, seed=3))
    assert (a.train, a.heldout, a.corpus, a.qrels) == (b.train, b.heldout, b.corpus, b.qrels)
    others = [synthesize(records, cfg(tmp_path, seed=s)) for s in (4, 5, 6)]
    assert any((o.train, o.heldout) != (a.train, a.heldout) for o in others)


def test_max_pairs_takes_categories_in_turn(pkg, tmp_path):
    res = synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, max_pairs=8, held_out=0.0))
    cats = [p["category"] for p in res.train]
    assert len(cats) == 8 and set(cats) == set(CATEGORIES)


def test_llm_source_uses_the_callable_and_cleans_its_answers(pkg, tmp_path):
    calls = []

    def generate(prompts: list[str]) -> list[str]:
        calls.append(len(prompts))
        out = []
        for p in prompts:
            name = p.split("def ", 1)[1].split("(", 1)[0]
            if "call the function" in p:
                out.append(f"```python\nresult = {name}(first_value, second_value)\nprint(result)\n```")
            else:
                out.append(f"Request: \"find code that handles the {name.replace('_', ' ')} operation for shapes\"")
        return out

    res = synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, source="llm", llm_batch_size=4), generate)
    pairs = res.train + res.heldout
    assert calls and max(calls) <= 4 and {p["source"] for p in pairs} == {"llm"}
    assert {p["category"] for p in pairs} == set(CATEGORIES)
    t2c = next(p for p in pairs if p["category"] == "text2code")
    assert t2c["query"].startswith("find code that handles") and not t2c["query"].endswith('"')
    assert all(not p["query"].startswith("```") for p in pairs)
    with pytest.raises(DataError, match="returned 0 completions"):
        synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, source="llm"), lambda prompts: [])
    with pytest.raises(DataError, match="needs a generate"):
        synthesize(records_from_sources([str(pkg)]), cfg(tmp_path, source="llm"))


def test_clean_llm():
    assert clean_llm("Summary: Adds two numbers.\n\nMore text.", code=False) == "Adds two numbers."
    assert clean_llm("Here you go:\n```python\nx = f(1)\n```\nDone", code=True) == "x = f(1)"


def test_records_from_a_corpus_jsonl_match_the_source(pkg, tmp_path):
    from dorag.core.io import write_jsonl
    from dorag.data.corpus import from_code

    path = tmp_path / "corpus.jsonl"
    write_jsonl(path, from_code(pkg))  # class summaries are skipped, methods keep their class
    from_jsonl = {r.id for r in records_from_sources([str(path)])}
    from_dir = {r.id for r in records_from_sources([str(pkg)])}
    assert from_jsonl == from_dir
    with pytest.raises(DataError, match="not found or not recognised"):
        records_from_sources([str(tmp_path / "missing")])


def test_config_validation_lists_every_problem():
    from dorag.core.config import from_dict
    from dorag.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        from_dict(SynthConfig, {"categories": ["text2code", "prose"], "held_out": 1.5, "max_pairs": 0})
    msg = str(err.value)
    assert "categories" in msg and "held_out" in msg and "max_pairs" in msg
    assert dataclasses.replace(SynthConfig(), seed=1).seed == 1
