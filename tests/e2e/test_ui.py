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
    page = browser.new_page(viewport={"width": 1280, "height": 900})
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
