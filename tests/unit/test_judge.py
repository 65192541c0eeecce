from __future__ import annotations

from dorag.evaluation.judge import judge, mean_score, parse_score


def test_parse_score_variants():
    assert parse_score("Score: 4\nGood.") == 4
    assert parse_score("score=2 because") == 2
    assert parse_score("5 - perfect") == 5
    assert parse_score("I cannot rate this") is None
    assert parse_score("Score: 9") is None


def test_judge_sends_rubric_task_answer_and_reference():
    seen = []

    def chat(messages):
        seen.append(messages)
        return "Score: 3\nA bug." if "return 1" in messages[1]["content"] else "Score: 5"

    out = judge(["add two numbers", "negate"], ["return a + b", "return 1"], chat, references=["return a+b", None])
    assert [j.score for j in out] == [5, 3]
    assert seen[0][0]["role"] == "system" and "1 to 5" in seen[0][0]["content"]
    assert "Reference answer" in seen[0][1]["content"] and "Reference answer" not in seen[1][1]["content"]
    assert mean_score(out) == 4.0
