"""Prompt assembly: token budget, deduplication, order, truncation at line boundaries."""

from __future__ import annotations

from dorag.retrieval.assemble import assemble_context, format_document


def words(text: str) -> int:
    return len(text.split())


def doc(i: str, n_lines: int = 3, parent: str | None = None) -> dict:
    meta = {"parent": parent} if parent else {}
    return {"id": i, "text": "\n".join(f"line_{i}_{k} = {k}" for k in range(n_lines)) + "\n", "meta": meta}


def test_documents_fit_in_rank_order_within_the_budget():
    docs = [doc("a"), doc("b"), doc("c")]
    one = words(format_document(docs[0]))
    ctx, ids = assemble_context(docs, words, budget_tokens=2 * one + 1, min_tokens=1000)
    assert ids == ["a", "b"]
    assert words(ctx) <= 2 * one + 1
    assert ctx.index("line_a_0") < ctx.index("line_b_0")
    ctx, ids = assemble_context(docs, words, budget_tokens=10_000, order="ascending")
    assert ids == ["c", "b", "a"] and ctx.index("line_c_0") < ctx.index("line_a_0")


def test_duplicates_and_sibling_chunks_are_dropped():
    a = doc("a")
    same_text = {**doc("a"), "id": "a-copy"}
    chunks = [doc("p#0", parent="p"), doc("p#1", parent="p")]
    _, ids = assemble_context([a, same_text, *chunks], words, budget_tokens=10_000)
    assert ids == ["a", "p#0"]


def test_an_overlong_document_is_cut_at_a_line_boundary_and_fence_closed():
    big = doc("big", n_lines=200)
    ctx, ids = assemble_context([big], words, budget_tokens=120, min_tokens=20)
    assert ids == ["big"]
    assert words(ctx) <= 120
    assert ctx.rstrip().endswith("```") and "(truncated)" in ctx
    assert all(line.startswith(("#", "```", "line_big_", "    #")) for line in ctx.splitlines())
    _, ids = assemble_context([big], words, budget_tokens=120, min_tokens=500)
    assert ids == []  # too little room left: skip rather than include a stub


def test_empty_retrieval_gives_no_context():
    assert assemble_context([], words, 100) == ("", [])
