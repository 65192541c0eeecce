"""The web page in headless Chromium: pick an adapter and an index, generate, see the snippets, rate."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from e2e.conftest import API_KEY, ARTIFACTS

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def test_generate_with_adapter_and_rag_then_rate(server, browser):
    page, errors = _login(browser, server, {"width": 1280, "height": 900})
    assert page.locator("#model option").all_inner_texts() == ["base (base model)", "code (lora adapter)",
                                                              "docstring (dora adapter)"]
    page.select_option("#model", "code")
    page.select_option("#rag", "stdlib")
    page.fill("#topk", "2")
    page.fill("#max-tokens", "24")
    page.fill("#prompt", "Write gcd: the greatest common divisor of a list of numbers.")
    page.click("#generate")
    page.wait_for_selector("#feedback:not([hidden])", timeout=60_000)

    snippets = page.locator("#snippets details.snippet")
    assert snippets.count() == 2 and "math:gcd" in snippets.first.inner_text()
    assert page.locator("#snippets .kw").count() > 0  # highlighted: `def`, `while`, `return`
    assert page.locator("#output pre.code").count() >= 1
    page.click("#output button.copy")  # the copy button on the answer's code
    page.wait_for_selector("#output button.copy:text('copied')", timeout=5_000)
    assert "ms total" in page.inner_text("#latency")

    page.check("input[name=rating][value='2']")
    page.fill("#correction", "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n")
    page.fill("#comment", "from the browser test")
    page.click("#send-feedback")
    page.wait_for_selector("#feedback-status .ok", timeout=30_000)
    saved = page.inner_text("#feedback-status")
    row_id = int(saved.split("#")[1].split(".")[0])

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)
    page.close()
    assert not errors, errors

    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM feedback WHERE id = ?", (row_id,)).fetchone()
    assert row is not None
    assert (row["model"], row["adapter"], row["rag_index"], row["rating"]) == ("code+rag:stdlib", "code", "stdlib", 2)
    assert row["prompt"].startswith("Write gcd") and row["comment"] == "from the browser test"
    assert "while b:" in row["correction"] and row["retrieved"].startswith('["math:gcd"')
    assert row["response_id"].startswith("chatcmpl-") and row["latency_ms"] > 0
    assert row["verified"] == 1  # the streamed text the page rated is the answer the server recorded


def _login(browser, server, viewport=None):
    """A page on the server, past its API-key prompt; returns it with the list its errors go to."""
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.url + "/")
    # the server has a key: the page asks for it (its first /v1 call got a 401)
    page.wait_for_selector("#api-key", state="visible")
    page.fill("#api-key", API_KEY)
    page.click("#save-key")
    page.wait_for_selector("#model option[value=docstring]", state="attached")
    assert errors and all("401" in e for e in errors)  # the two calls made before the key was given
    errors.clear()
    return page, errors


def test_compare_mode_runs_three_configurations_side_by_side_and_rates_one(server, browser):
    page, errors = _login(browser, server)
    page.click("#tab-compare")
    assert page.is_visible("#compare-view") and not page.is_visible("#single-view")
    cols = page.locator(".cmp-col")
    assert cols.count() == 3
    # the defaults: the base model, the first adapter, and that adapter with the first index
    picked = [(cols.nth(i).locator(".cmp-model").input_value(), cols.nth(i).locator(".cmp-rag").input_value())
              for i in range(3)]
    assert picked == [("base", ""), ("code", ""), ("code", "stdlib")]
    cols.nth(1).locator(".cmp-model").select_option("docstring")
    page.fill("#cmp-max-tokens", "16")
    page.fill("#cmp-topk", "2")
    page.fill("#cmp-prompt", "Write gcd: the greatest common divisor of a list of numbers.")
    page.click("#cmp-run")
    page.wait_for_selector("#cmp-status:text('done')", timeout=90_000)
    for i in range(3):
        assert "ms total" in cols.nth(i).locator(".cmp-latency").inner_text(), i
        assert cols.nth(i).locator(".rate").is_visible()
    assert cols.nth(0).locator(".cmp-snippets").inner_text() == "No retrieval."
    assert cols.nth(2).locator(".cmp-snippets details.snippet").count() == 2
    assert "math:gcd" in cols.nth(2).locator(".cmp-snippets").inner_text()
    cols.nth(2).locator(".rate button[data-rating='4']").click()
    page.wait_for_selector("#cmp-col-2 .cmp-rated .ok", timeout=30_000)
    row_id = int(cols.nth(2).locator(".cmp-rated").inner_text().split("#")[1])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-compare.png"), full_page=True)
    page.close()
    assert not errors, errors
    conn = sqlite3.connect(server.db)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM feedback WHERE id = ?", (row_id,)).fetchone()
    assert (row["model"], row["adapter"], row["rag_index"], row["rating"]) == ("code+rag:stdlib", "code", "stdlib", 4)
    assert row["comment"] == "compare mode" and row["verified"] == 1


def test_chat_keeps_its_history_stop_cancels_and_the_docstring_task_has_its_template(server, browser):
    import json

    page, errors = _login(browser, server)
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/chat/completions") else None)
    page.fill("#max-tokens", "8")
    page.fill("#prompt", "Write gcd.")
    page.click("#generate")
    page.wait_for_selector("#feedback:not([hidden])", timeout=60_000)
    page.fill("#prompt", "Now make it iterative.")
    page.click("#generate")
    page.wait_for_selector("#history-info:text('2 earlier turn')", timeout=60_000)
    assert [m["role"] for m in sent[1]["messages"]] == ["user", "assistant", "user"]
    assert sent[1]["messages"][0]["content"] == "Write gcd." and sent[1]["messages"][2]["content"] == "Now make it iterative."
    assert page.locator("#output .turn.user").count() == 2 and page.locator("#output .turn.assistant").count() == 2
    page.click("#new-chat")
    assert page.locator("#output .turn").count() == 0

    # stop: the request in flight is aborted (the server cancels on disconnect) and the page is usable again
    page.fill("#prompt", "Write a long function.")
    page.evaluate("() => { document.getElementById('generate').click(); document.getElementById('stop').click(); }")
    page.wait_for_function("document.getElementById('status').textContent === 'stopped'", timeout=30_000)
    assert page.is_enabled("#generate") and not page.is_visible("#stop")

    # the docstring task: its own template, the docstring adapter, one turn, rendered by the server's docstring prompt
    page.select_option("#task", "docstring")
    assert page.is_visible("#doc-style-box") and page.input_value("#model") == "docstring"
    assert "Paste a Python function" in page.get_attribute("#prompt", "placeholder")
    page.select_option("#doc-style", "google")
    page.fill("#prompt", "def area(w, h):\n    return w * h")
    sent.clear()
    page.click("#generate")
    page.wait_for_selector("#feedback:not([hidden])", timeout=60_000)
    assert sent[-1]["task"] == "docstring" and sent[-1]["docstring_style"] == "google"
    assert len(sent[-1]["messages"]) == 1 and sent[-1]["model"] == "docstring"
    page.close()
    assert not [e for e in errors if "AbortError" not in e], errors
