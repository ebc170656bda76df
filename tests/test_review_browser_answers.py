"""Reviewing written answers in real headless Chromium (Debian's `chromium`, driven by playwright) against a
real server: accept, edit in place with Ctrl+Enter, reject and rewrite, undo with the diff, and the teacher's
answer shown as text, never as markup."""
import shutil

import pytest

from answerdb import ITEMS, make_answer_db
from quarry_al.engine.review.auth import add_reviewer
from quarry_al.engine.store import Store
from webserver import running_server

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")


@pytest.fixture
def run(tmp_path):
    db = make_answer_db(tmp_path / "quarry.db")
    with Store(db) as store:
        token = add_reviewer(store, "ana")
    with running_server(db) as url:
        yield db, url, token


def wait_for_item(page, item_id: str) -> None:
    page.wait_for_function("id => document.querySelector('#card').dataset.itemId === id", arg=item_id)


def test_accept_edit_rewrite_and_undo_in_the_browser(run):
    db, url, token = run
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(bypass_csp=True).new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/login")
        page.fill("#token", token)
        page.click("#login")
        wait_for_item(page, "a2")
        assert page.text_content("#text") == ITEMS[2][0] and page.text_content("#reference") == "120 minutes"
        assert page.text_content("#teacher-label") == ITEMS[2][3] and page.is_hidden("#input-block")
        page.keyboard.press("Enter")  # accept the teacher's answer
        wait_for_item(page, "a3")
        page.keyboard.press("e")  # edit in place: the editor starts from the teacher's answer
        assert page.is_visible("#editor") and page.input_value("#editor") == "13"
        page.fill("#editor", "12")
        page.keyboard.press("Control+Enter")
        wait_for_item(page, "a4")
        assert page.text_content("#input") == "lemon" and page.is_visible("#input-block")
        page.keyboard.press("r")  # reject and rewrite: the editor starts empty
        assert page.input_value("#editor") == ""
        page.keyboard.type("LEMON")
        page.keyboard.press("a")  # typing in the editor is not a key command
        page.keyboard.press("Control+Enter")
        wait_for_item(page, "a5")
        assert page.text_content("#teacher-label") == ITEMS[5][3]  # markup shown as text
        assert page.evaluate("document.title") != "pwned" and page.query_selector("#teacher-label b") is None
        page.keyboard.press("u")  # correct the previous decision: its diff is shown
        wait_for_item(page, "a4")
        page.wait_for_selector("#diff-block:not([hidden])")
        assert "-Lemon" in page.text_content("#diff") and "+LEMONa" in page.text_content("#diff")
        page.keyboard.press("e")
        assert page.input_value("#editor") == "LEMONa"  # a correction edits your own answer
        page.fill("#editor", "LEMON")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("() => document.querySelector('#notice').textContent === 'Corrected.'")
        browser.close()
    assert errors == []
    with Store(db) as store:
        log = [(r.item_id, r.kind, r.label) for r in store.review_log()]
    assert log == [("a2", "accept", ITEMS[2][3]), ("a3", "edit", "12"), ("a4", "rewrite", "LEMONa"),
                   ("a4", "edit", "LEMON")]
